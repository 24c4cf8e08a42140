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


def gains_from_report(source: str | Path, shots: int = 16, baseline: str = "zeroshot") -> dict[str, dict[str, float]]:
    """Per-method accuracy gain over ``baseline`` at ``shots``, by dataset, from a results folder.

    The baseline's accuracy at the same shot count is used, else its mean over all shot counts
    (zero-shot CLIP does not depend on the shots). Returns ``{method: {dataset: gain}}``.
    """
    from upt.report import collect, fewshot_table

    table = fewshot_table(collect(source))
    if table is None:
        raise UptError(f"No few-shot results below {source}; gains need a fewshot sweep's output.")
    if baseline not in table.methods:
        raise UptError(f"No '{baseline}' results below {source}: add {baseline} to the sweep's methods.")
    gains: dict[str, dict[str, float]] = {}
    for d in table.datasets:
        base = table.mean("acc", baseline, d, shots)
        if base is None:
            found = [m for k in table.shots if (m := table.mean("acc", baseline, d, k)) is not None]
            base = sum(found) / len(found) if found else None
        for m in table.methods:
            acc = table.mean("acc", m, d, shots)
            if m != baseline and acc is not None and base is not None:
                gains.setdefault(m, {})[d] = acc - base
    if not gains:
        raise UptError(f"No method has {shots}-shot results beside {baseline} below {source}; try --shots.")
    return gains


def analyze_variance(datasets: list[str], out: str | Path, backbone: str = "ViT-B-16",
                     pretrained: str | None = "openai", data_root: str | None = None, device: str = "auto",
                     report: str | Path | None = None, shots: int = 16, baseline: str = "zeroshot",
                     **kwargs) -> dict:
    """Compute the statistics for every dataset, write ``variance.json`` and ``variance.png``.

    Args:
        report: results folder whose few-shot gains are plotted against the statistics.
        kwargs: passed to :func:`dataset_variance` (split, per_class, seed, workers, batch_size).

    Returns:
        ``{"stats": [...], "gains": {...}, "files": [...]}``.
    """
    from upt.backbone import load_backbone
    from upt.engine.rundir import resolve_device

    if not datasets:
        raise UptError("Name at least one dataset (--dataset).")
    gains = gains_from_report(report, shots, baseline) if report is not None else {}  # fail before encoding
    model = load_backbone(backbone, pretrained, resolve_device(device))
    stats = [dataset_variance(d, model, data_root, **kwargs) for d in datasets]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"backbone": backbone, "pretrained": pretrained, "shots": shots, "baseline": baseline,
              "stats": [asdict(s) for s in stats], "gains": gains}
    (out / "variance.json").write_text(json.dumps(result, indent=2))
    result["files"] = [out / "variance.json", variance_figure(stats, gains, out / "variance.png", baseline, shots)]
    return result


def variance_figure(stats: list[VarianceStats], gains: dict[str, dict[str, float]], path: Path,
                    baseline: str = "zeroshot", shots: int = 16) -> Path:
    """The two statistics against each other, and each method's gain against each statistic."""
    from upt.report.collect import short_name
    from upt.report.figures import new_figure, save

    fig, axes = new_figure(3 if gains else 1, 1)
    ax = axes[0]
    ax.scatter([s.intra_image_variance for s in stats], [s.inter_text_variance for s in stats])
    for s in stats:
        ax.annotate(short_name(s.dataset), (s.intra_image_variance, s.inter_text_variance), fontsize=7)
    ax.set(xlabel="intra-class image variance", ylabel="inter-class text variance", title="zero-shot CLIP features")
    for ax, key, label in zip(axes[1:], ("intra_image_variance", "inter_text_variance"),
                              ("intra-class image variance", "inter-class text variance"), strict=False):
        for method, by_dataset in gains.items():
            by_short = {short_name(d): g for d, g in by_dataset.items()}
            points = [(getattr(s, key), by_short[name], name) for s in stats
                      if (name := short_name(s.dataset)) in by_short and math.isfinite(by_short[name])]
            if points:
                ax.scatter([p[0] for p in points], [p[1] for p in points], label=method)
            for x, y, name in points:
                ax.annotate(name, (x, y), fontsize=6, alpha=0.7)
        ax.axhline(0, color="black", lw=0.8)
        ax.set(xlabel=label, ylabel=f"gain over {baseline} ({shots} shots, points)", title=f"gain vs {label}")
        ax.legend(fontsize=7)
    return save(fig, path)
