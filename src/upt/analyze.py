"""The UPT paper's Figure 1 analysis: how spread out a dataset is in CLIP's two embedding spaces.

For each dataset, from zero-shot CLIP (frozen encoders, L2-normalised features; docs/protocols.md):

- intra-class image variance ``V_img = 1/C Σ_c 1/n_c Σ_{i∈c} ||f_i − μ_c||²`` with ``μ_c`` the mean
  image feature of class c (classes with fewer than two images are left out);
- inter-class text variance ``V_txt = 1/C Σ_c ||t_c − t̄||²`` with ``t_c`` the text feature of the
  dataset's template filled with class c's name and ``t̄`` their mean.

Both lie in [0, 1]. Plotted against each method's gain over zero-shot CLIP (from a report), they
show which datasets favour text prompts (large image spread) or visual prompts (small text spread).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from upt.errors import UptError

log = logging.getLogger(__name__)


@dataclass
class VarianceStats:
    """The two statistics of one dataset, and how many images and classes they come from."""

    dataset: str
    split: str
    n_classes: int
    n_images: int
    intra_image_variance: float
    inter_text_variance: float


def intra_class_variance(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over classes (with >= 2 samples) of the mean squared distance to the class mean."""
    per_class = []
    for c in labels.unique():
        f = features[labels == c].double()
        if len(f) >= 2:
            per_class.append(((f - f.mean(0)) ** 2).sum(1).mean())
    if not per_class:
        raise UptError("Intra-class variance needs at least one class with two or more images.")
    return float(torch.stack(per_class).mean())


def inter_class_variance(class_features: torch.Tensor) -> float:
    """Mean squared distance of the class features (C, D) to their mean."""
    if len(class_features) < 2:
        raise UptError("Inter-class variance needs at least two classes.")
    f = class_features.double()
    return float(((f - f.mean(0)) ** 2).sum(1).mean())


def dataset_variance(dataset: str, backbone, data_root: str | None = None, split: str = "test",
                     per_class: int = 50, seed: int = 1, workers: int = 0, batch_size: int = 100) -> VarianceStats:
    """Both statistics for one dataset from a loaded (frozen) backbone.

    Args:
        dataset: catalog name or ``folder:PATH``.
        backbone: from :func:`upt.backbone.load_backbone`.
        split: the split whose images are encoded.
        per_class: images per class, chosen reproducibly with ``seed`` (0: all of them).
    """
    from upt.data import fewshot_indices, load_dataset
    from upt.engine.loaders import encode_all, image_loader
    from upt.engine.precision import resolve_precision
    from upt.methods import build_method

    splits = load_dataset(dataset, data_root)
    samples = splits.split(split)
    if per_class > 0:
        samples = [samples[i] for i in fewshot_indices([s.label for s in samples], per_class, seed)]
    if not samples:
        raise UptError(f"The {split} split of {dataset} has no images.")
    method = build_method("zeroshot", backbone, splits.classnames, splits.template, {})
    precision = resolve_precision("auto", backbone.device)
    precision.prepare(backbone, method)
    loader = image_loader(samples, backbone.preprocess, "center_crop", False, batch_size, workers)
    with torch.no_grad():
        features, labels = encode_all(method, loader, precision)
        text = method.encode_text().float()
    stats = VarianceStats(dataset, split, len(splits.classnames), len(samples),
                          intra_class_variance(features.cpu(), labels.cpu()), inter_class_variance(text.cpu()))
    log.info("%s: intra-class image variance %.4f, inter-class text variance %.4f (%d images, %d classes)",
             dataset, stats.intra_image_variance, stats.inter_text_variance, stats.n_images, stats.n_classes)
    return stats


def report_table(source: str | Path, baseline: str = "zeroshot", backbone: str | None = None,
                 pretrained: str | None = None):
    """The few-shot table of a results folder; of ``backbone`` and ``pretrained`` when it holds several."""
    from upt.report import fewshot_table
    from upt.report.collect import collect, label_records

    records = [r for r in collect(source) if r.protocol == "fewshot"]
    settings = sorted({(r.backbone, str(r.pretrained)) for r in records})
    if len(settings) > 1:
        records = label_records([r for r in records if (r.backbone, str(r.pretrained)) == (backbone, str(pretrained))])
        if not records:
            raise UptError(f"{source} holds few-shot results of several backbones and weights ({settings}) and none "
                           f"of {backbone} with {pretrained}; analyse with --backbone/--pretrained of one of them.")
    table = fewshot_table(records)
    if table is None:
        raise UptError(f"No few-shot results below {source}; gains need a fewshot sweep's output.")
    if baseline not in table.methods:
        raise UptError(f"No '{baseline}' results below {source}: add {baseline} to the sweep's methods.")
    return table


def default_shots(table, baseline: str = "zeroshot") -> int:
    """The largest shot count at which the baseline and another method have a result on one dataset."""
    trained = [k for k in table.shots if k is not None]
    for k in sorted(trained, reverse=True):
        for d in table.datasets:
            if table.mean("acc", baseline, d, k) is not None and any(
                    table.mean("acc", m, d, k) is not None for m in table.methods if m != baseline):
                return k
    raise UptError(f"No shot count has results of '{baseline}' and another method on one dataset "
                   f"(shots found: {trained or 'none'}); add a trained method to the sweep.")


def report_gains(source: str | Path, shots: int | None = None, baseline: str = "zeroshot",
                 backbone: str | None = None, pretrained: str | None = None) -> tuple[int, dict[str, dict[str, float]]]:
    """The shot count (``shots``, else :func:`default_shots`) and each method's gain over ``baseline`` there.

    The baseline is compared at the same shot count; zero-shot CLIP has one value whatever the
    shots (:mod:`upt.report.aggregate`). Returns ``(shots, {method: {dataset: gain}})``.
    """
    table = report_table(source, baseline, backbone, pretrained)
    shots = default_shots(table, baseline) if shots is None else shots
    gains: dict[str, dict[str, float]] = {}
    for d in table.datasets:
        base = table.mean("acc", baseline, d, shots)
        for m in table.methods:
            acc = table.mean("acc", m, d, shots)
            if m != baseline and acc is not None and base is not None:
                gains.setdefault(m, {})[d] = acc - base
    if not gains:
        raise UptError(f"No method has {shots}-shot results beside {baseline} below {source}; try --shots.")
    return shots, gains


def gains_from_report(source: str | Path, shots: int | None = None, baseline: str = "zeroshot",
                      backbone: str | None = None, pretrained: str | None = None) -> dict[str, dict[str, float]]:
    """Per-method accuracy gain over ``baseline`` at ``shots``, by dataset: ``{method: {dataset: gain}}``."""
    return report_gains(source, shots, baseline, backbone, pretrained)[1]


def _failure(exc: Exception) -> str:
    return str(exc) if isinstance(exc, UptError) else f"{type(exc).__name__}: {exc}"


def analyze_variance(datasets: list[str], out: str | Path, backbone: str = "ViT-B-16",
                     pretrained: str | None = "openai", data_root: str | None = None, device: str = "auto",
                     report: str | Path | None = None, shots: int | None = None, baseline: str = "zeroshot",
                     options=None, **kwargs) -> dict:
    """Compute the statistics for every dataset, write ``variance.json`` and the ``variance`` figure.

    A dataset that fails (missing, unreadable, one image per class) is reported under ``failed``
    (with a warning) and the others are kept; only when every dataset fails is it an error.

    Args:
        report: results folder whose few-shot gains are plotted against the statistics.
        shots: shot count of the gains (default: the largest one of the report, :func:`default_shots`).
        options: figure formats and dpi (:class:`upt.report.figures.FigureOptions`).
        kwargs: passed to :func:`dataset_variance` (split, per_class, seed, workers, batch_size).

    Returns:
        ``{"stats": [...], "failed": [...], "gains": {...}, "shots": K, "files": [...]}``.
    """
    from upt.backbone import load_backbone
    from upt.engine.rundir import resolve_device

    if not datasets:
        raise UptError("Name at least one dataset (--dataset).")
    gains = {}
    if report is not None:  # fail before encoding
        shots, gains = report_gains(report, shots, baseline, backbone, pretrained)
    model = load_backbone(backbone, pretrained, resolve_device(device))
    stats, failed = [], []
    for d in datasets:
        try:
            stats.append(dataset_variance(d, model, data_root, **kwargs))
        except Exception as exc:  # noqa: BLE001 - one dataset's failure must not throw the finished ones away
            failed.append({"dataset": d, "error": _failure(exc)})
            log.warning("%s: no variance statistics: %s", d, failed[-1]["error"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"backbone": backbone, "pretrained": pretrained, "shots": shots, "baseline": baseline,
              "stats": [asdict(s) for s in stats], "failed": failed, "gains": gains}
    (out / "variance.json").write_text(json.dumps(result, indent=2))
    if not stats:
        raise UptError("No dataset could be analysed: " + "; ".join(f"{f['dataset']}: {f['error']}" for f in failed)
                       + f" (written to {out / 'variance.json'}).")
    result["files"] = [out / "variance.json", *variance_figure(stats, gains, out / "variance", baseline, shots, options)]
    return result


def variance_figure(stats: list[VarianceStats], gains: dict[str, dict[str, float]], stem: Path,
                    baseline: str = "zeroshot", shots: int | None = None, options=None) -> list[Path]:
    """The two statistics against each other, and each method's gain against each statistic."""
    from upt.report.collect import short_name
    from upt.report.figures import GRID_PANEL, PANEL, legend_below, new_figure, save, style

    def label(ax, text: str, x: float, y: float) -> None:
        ax.annotate(text, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6.5)

    @style
    def draw():
        fig, axes = new_figure(3 if gains else 1, 1, size=GRID_PANEL if gains else PANEL, legend=list(gains))
        ax = axes[0]
        ax.scatter([s.intra_image_variance for s in stats], [s.inter_text_variance for s in stats], color="black")
        for s in stats:
            label(ax, short_name(s.dataset), s.intra_image_variance, s.inter_text_variance)
        ax.set(xlabel="intra-class image variance", ylabel="inter-class text variance",
               title="zero-shot CLIP features")
        for ax, key, name, short in zip(axes[1:], ("intra_image_variance", "inter_text_variance"),
                                        ("intra-class image variance", "inter-class text variance"),
                                        ("image variance", "text variance"), strict=False):
            for method, by_dataset in gains.items():
                by_short = {short_name(d): g for d, g in by_dataset.items()}
                points = [(getattr(s, key), by_short[n], n) for s in stats
                          if (n := short_name(s.dataset)) in by_short and math.isfinite(by_short[n])]
                if points:
                    ax.scatter([p[0] for p in points], [p[1] for p in points], label=method)
                for x, y, n in points:
                    label(ax, n, x, y)
            ax.axhline(0, color="black", lw=0.8)
            ax.set(xlabel=name, ylabel=f"gain over {baseline}\n({shots} shots, points)", title=f"gain vs {short}")
        for ax in axes:
            ax.margins(0.2, 0.15)  # room for the dataset labels beside the points
        legend_below(fig, axes)
        return fig

    return save(draw(), stem, options)
