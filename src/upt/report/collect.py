"""Read every result record below a folder: ``results.json`` of training runs and ``eval/*.json``.

Results are data: nothing here reads logs. A record is one (run, evaluated dataset, classes)
accuracy, identified by everything that makes two accuracies comparable: protocol, method,
backbone, pretrained weights, the training and the evaluated dataset *and the folders they were
read from* (``split_info.dataset_dir``), classes, shots and seed. Nothing is dropped silently: a
file that is not a record, an evaluation that repeats its run's own ``results.json``, and a second
folder holding the same identity are returned as :class:`Skipped`, with the reason, for the
report's "Not in the tables" section.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

log = logging.getLogger(__name__)
METHOD_ORDER = ("zeroshot", "linear-probe", "coop", "cocoop", "vpt", "maple", "upt")
SHOT_FREE_METHODS = ("zeroshot",)  # when the method is not registered here: depends on neither shots nor seed
UNRECORDED = "folder not recorded"


@dataclass(frozen=True)
class Record:
    """One accuracy: a method trained on ``dataset`` and tested on ``eval_dataset``'s ``classes``.

    Attributes:
        kind: ``train`` (the run's own ``results.json``) or ``eval`` (an ``eval/*.json`` record).
        data_dir, eval_data_dir: folders the training / evaluated dataset were read from (None:
            not recorded); a ``folder:`` dataset's folder is its name.
        precision, device: of the run (an evaluation without its own takes its run's).
        run: the run folder the record belongs to.
        label: the method as tables show it (:func:`label_records`).
    """

    protocol: str
    method: str
    dataset: str
    eval_dataset: str
    classes: str
    shots: int
    seed: int
    backbone: str
    pretrained: str | None
    accuracy: float
    macro_f1: float | None
    kind: str
    path: str
    data_dir: str | None = None
    eval_data_dir: str | None = None
    precision: str | None = None
    device: str | None = None
    run: str = ""
    label: str = ""

    @property
    def shot_free(self) -> bool:
        """Whether the accuracy depends on neither shots nor seed (zero-shot CLIP)."""
        return shot_free(self.method)

    def identity(self) -> tuple:
        """Everything that tells this accuracy apart from another one (two equal identities: one result)."""
        return (self.protocol, self.method, self.backbone, self.pretrained, self.dataset, self.data_dir,
                self.eval_dataset, self.eval_data_dir, self.classes, self.shots, self.seed)


@dataclass(frozen=True)
class Skipped:
    """A record file the tables do not use, and why (``record``: its contents, when it is one)."""

    path: str
    reason: str
    record: Record | None = None


@dataclass
class Collected:
    """The records below a folder (each identity once) and the files left out of them."""

    records: list[Record]
    skipped: list[Skipped]


@functools.cache
def shot_free(method: str) -> bool:
    """Whether ``method`` uses no labelled image (its ``needs_training_data`` is False): zero-shot CLIP."""
    from upt.methods import REGISTRY

    cls = REGISTRY.get(method)
    return not cls.needs_training_data if cls is not None else method in SHOT_FREE_METHODS


def _folder(dataset: str, info: object) -> str | None:
    if dataset.startswith("folder:"):
        return dataset[len("folder:"):]
    folder = info.get("dataset_dir") if isinstance(info, dict) else None
    return str(folder) if folder else None


def _load(path: Path, kind: str) -> Record | Skipped:
    try:
        data = json.loads(path.read_text())
        dataset = str(data["dataset"])
        eval_dataset = str(data.get("eval_dataset") or dataset)
        eval_dir = _folder(eval_dataset, data.get("split_info"))
        return Record(
            protocol=str(data.get("protocol") or "fewshot"), method=str(data["method"]), dataset=dataset,
            eval_dataset=eval_dataset, classes=str(data.get("classes") or "all"), shots=int(data["shots"]),
            seed=int(data["seed"]), backbone=str(data.get("backbone")), pretrained=data.get("pretrained"),
            accuracy=float(data["accuracy"]), macro_f1=data.get("macro_f1"), kind=kind, path=str(path),
            data_dir=eval_dir if eval_dataset == dataset else _folder(dataset, {}), eval_data_dir=eval_dir,
            precision=data.get("precision"), device=data.get("device"),
            run=str(path.parent if kind == "train" else path.parent.parent))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("skipping %s: not a upt result record (%s)", path, exc)
        return Skipped(str(path), f"not a upt result record ({type(exc).__name__}: {exc})")


def _with_run(records: list[Record]) -> list[Record]:
    """Evaluations take what only their run records: the training data's folder, precision, device."""
    runs = {r.run: r for r in records if r.kind == "train"}
    out = []
    for r in records:
        run = runs.get(r.run)
        if r.kind == "eval" and run is not None and run.dataset == r.dataset:
            r = replace(r, data_dir=run.data_dir, precision=r.precision or run.precision,
                        device=r.device or run.device)
        out.append(r)
    return out


def _root(dataset: str, folder: str | None) -> str | None:
    return None if dataset.startswith("folder:") else data_root(dataset, folder)  # a folder: name is its folder


def label_records(records: list[Record]) -> list[Record]:
    """Row labels for the tables: the method, then whatever its protocol's records mix.

    ``method [backbone, weights]`` when they mix backbones or weights, and ``[..., data ROOT]`` (or
    ``data TRAIN-ROOT → EVAL-ROOT``) when they read one dataset name from several folders, so
    results of different models or data are never one row, one cell or one average.
    """
    by_protocol: dict[str, list[Record]] = {}
    for r in records:
        by_protocol.setdefault(r.protocol, []).append(r)
    labelled = {}
    for group in by_protocol.values():
        settings = {(r.backbone, r.pretrained) for r in group}
        folders: dict[str, set] = {}
        for r in group:
            folders.setdefault(r.dataset, set()).add(r.data_dir)
            folders.setdefault(r.eval_dataset, set()).add(r.eval_data_dir)
        two_copies = any(len(found) > 1 for found in folders.values())
        for r in group:
            tags = [r.backbone, str(r.pretrained or "none")] if len(settings) > 1 else []
            roots = [x for x in dict.fromkeys((_root(r.dataset, r.data_dir), _root(r.eval_dataset, r.eval_data_dir)))
                     if x is not None]
            if two_copies and roots:
                tags.append("data " + " → ".join(roots))
            labelled[id(r)] = replace(r, label=r.method + (f" [{', '.join(tags)}]" if tags else ""))
    return [labelled[id(r)] for r in records]


def gather(root: str | Path) -> Collected:
    """Every result record below ``root``, each identity once in a stable order, and what was left out."""
    root = Path(root)
    paths = [(p, "train") for p in sorted(root.rglob("results.json"))]
    paths += [(p, "eval") for p in sorted(root.rglob("eval/*.json"))]
    loaded = [_load(p, kind) for p, kind in paths]
    skipped = [s for s in loaded if isinstance(s, Skipped)]
    records = label_records(_with_run([r for r in loaded if isinstance(r, Record)]))
    own = {(r.run, r.identity()): r for r in records if r.kind == "train"}
    seen: dict[tuple, Record] = {}
    for r in records:
        run = own.get((r.run, r.identity()))
        if r.kind == "eval" and run is not None:
            reason = f"repeats `{run.path}` (an evaluation of the run's own test split), which is counted"
        elif (first := seen.setdefault(r.identity(), r)) is not r:
            reason = (f"same protocol, method, backbone, weights, data, classes, shots and seed as `{first.path}` "
                      f"({first.accuracy:.2f} there, {r.accuracy:.2f} here): a copied or re-run folder; "
                      "only the first is counted")
        else:
            continue
        log.warning("%s %s", r.path, reason)
        skipped.append(Skipped(r.path, reason, r))
    kept = list(seen.values())
    log.info("read %d result records below %s (%d files left out)", len(kept), root, len(skipped))
    return Collected(kept, skipped)


def collect(root: str | Path) -> list[Record]:
    """Every result record below ``root``, each identity once, in a stable order (see :func:`gather`)."""
    return gather(root).records


def data_root(dataset: str, folder: str | None) -> str:
    """The ``--data-root`` a catalog dataset was read from (a ``folder:`` dataset: its parent folder)."""
    from upt.data.catalog import CATALOG

    if folder is None:
        return UNRECORDED
    path = Path(folder)
    spec = CATALOG.get(dataset)
    depth = len(Path(spec.folder).parts) if spec is not None and spec.folder else 1
    return str(path.parents[depth - 1]) if len(path.parts) > depth else str(path)


def order_methods(labels) -> list[str]:
    """Methods in the papers' order (zero-shot first, UPT last), unknown ones after, by name."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(set(labels), key=lambda m: (rank.get(m.split(" [")[0], len(rank)), m))


def order_datasets(names) -> list[str]:
    """Datasets in the benchmark's table order, others after by name."""
    from upt.sweep.protocols import BENCHMARK, DG_TARGETS

    rank = {d: i for i, d in enumerate((*BENCHMARK, *DG_TARGETS))}
    return sorted(set(names), key=lambda d: (rank.get(d, len(rank)), d))


def short_name(dataset: str) -> str:
    """Display name: the catalog name, or the last component of a ``folder:`` path."""
    from upt.sweep.plan import dataset_slug

    return dataset_slug(dataset)
