"""Read every result record below a folder: ``results.json`` of training runs and ``eval/*.json``.

Results are data: nothing here reads logs. A record is one (run, evaluated dataset, classes)
accuracy; the same record found twice (a copied folder) is counted once, with a warning.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

log = logging.getLogger(__name__)
METHOD_ORDER = ("zeroshot", "linear-probe", "coop", "cocoop", "vpt", "maple", "upt")


@dataclass(frozen=True)
class Record:
    """One accuracy: a method trained on ``dataset`` and tested on ``eval_dataset``'s ``classes``.

    Attributes:
        kind: ``train`` (the run's own ``results.json``) or ``eval`` (an ``eval/*.json`` record).
        label: the method as tables show it (with the backbone when a folder mixes backbones).
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
    label: str = ""

    def key(self) -> tuple:
        return (self.protocol, self.label, self.dataset, self.eval_dataset, self.classes, self.shots, self.seed)


def _load(path: Path, kind: str) -> Record | None:
    try:
        data = json.loads(path.read_text())
        return Record(
            protocol=str(data.get("protocol") or "fewshot"), method=str(data["method"]),
            dataset=str(data["dataset"]), eval_dataset=str(data.get("eval_dataset") or data["dataset"]),
            classes=str(data.get("classes") or "all"), shots=int(data["shots"]), seed=int(data["seed"]),
            backbone=str(data.get("backbone")), pretrained=data.get("pretrained"),
            accuracy=float(data["accuracy"]), macro_f1=data.get("macro_f1"), kind=kind, path=str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("skipping %s: not a upt result record (%s)", path, exc)
        return None


def collect(root: str | Path) -> list[Record]:
    """Every result record below ``root``, each (run, dataset, classes) once, in a stable order."""
    root = Path(root)
    paths = [(p, "train") for p in sorted(root.rglob("results.json"))]
    paths += [(p, "eval") for p in sorted(root.rglob("eval/*.json"))]
    records = [r for r in (_load(p, kind) for p, kind in paths) if r is not None]
    backbones = {(r.backbone, r.pretrained) for r in records}
    records = [replace(r, label=r.method if len(backbones) <= 1 else f"{r.method} [{r.backbone}, {r.pretrained}]")
               for r in records]
    seen: dict[tuple, Record] = {}
    for r in records:
        first = seen.setdefault(r.key(), r)
        if first is not r and first.kind == r.kind:  # an eval of a run's own test split repeats its results
            log.warning("%s repeats the result of %s; counting it once", r.path, first.path)
    out = list(seen.values())
    log.info("read %d result records below %s", len(out), root)
    return out


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
