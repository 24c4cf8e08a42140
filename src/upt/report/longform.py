"""CSV renderings: the long-format table rows and the list of every record found.

One row per (method, dataset, column, shots), then the averages (``dataset = average``; transfer:
``eval = target-average``). A shot-free method (zero-shot CLIP) has one row per (dataset, column)
with ``shots = any``; its ``n_seeds`` counts the records collapsed into it, whatever their seeds.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from upt.report.aggregate import ANY, Cell, Table, harmonic
from upt.report.collect import Record
from upt.report.provenance import data_text, precisions

CSV_FIELDS = ("protocol", "method", "dataset", "eval", "shots", "n_seeds", "seeds", "mean", "std", "status",
              "backbone", "pretrained", "precision", "data")
RECORD_FIELDS = ("protocol", "method", "dataset", "eval_dataset", "classes", "shots", "seed", "backbone",
                 "pretrained", "precision", "device", "data_dir", "eval_data_dir", "accuracy", "macro_f1", "kind",
                 "path", "in_tables")


def _matches(t: Table, r: Record, column: str, dataset: str | None) -> bool:
    if dataset not in (None, "average") and r.dataset != dataset:
        return False
    if column in ("acc", "H", "target-average"):
        return True
    if t.protocol == "base2new":
        return r.classes == column
    return (r.eval_dataset == r.dataset) if column == "source" else r.eval_dataset == column


def _row(t: Table, method: str, dataset: str, column: str, k: int | None, cell: Cell | None = None,
         mean: float | None = None, status: str | None = None) -> dict:
    if cell is not None:
        status = "missing" if cell.missing else ("ok" if not cell.seeds or cell.n == len(t.seeds)
                                                 else "partial-seeds")
        mean = cell.mean
    free = method in t.shot_free
    records = [r for r in t.records if r.label == method and (free or k is ANY or r.shots == k)
               and _matches(t, r, column, dataset)]
    mine = [r for r in t.records if r.label == method]
    return {"protocol": t.protocol, "method": method, "dataset": dataset, "eval": column,
            "shots": "any" if free or k is ANY else k,
            "n_seeds": cell.n if cell else "", "seeds": " ".join(map(str, cell.seeds)) if cell else "",
            "mean": "" if mean is None else round(mean, 4),
            "std": "" if cell is None or cell.std is None else round(cell.std, 4), "status": status,
            "backbone": mine[0].backbone if mine else "", "pretrained": mine[0].pretrained if mine else "",
            "precision": " ".join(precisions(records)) if records else "", "data": data_text(records, code="")}


def _shots(t: Table, method: str) -> list[int | None]:
    """The shot counts a method's rows are written for: one (``any``) for a shot-free method."""
    return [ANY] if method in t.shot_free else t.shots


def table_rows(t: Table) -> list[dict]:
    """Long-format rows: one per (method, dataset, column, shots), then the averages (``dataset=average``)."""
    rows = [_row(t, m, d, c, k, cell=t.cell(c, m, d, k))
            for m in t.methods for k in _shots(t, m) for d in t.datasets for c in t.columns]
    if t.protocol == "base2new":
        rows += [_row(t, m, d, "H", k, mean=t.harmonic(m, d, k), status="ok" if t.harmonic(m, d, k) is not None
                      else "missing") for m in t.methods for k in _shots(t, m) for d in t.datasets]
    for m in t.methods:
        for k in _shots(t, m):
            if t.protocol in ("fewshot", "base2new"):
                means = {}
                for c in t.columns:
                    means[c], present = t.average(c, m, k)
                    status = "ok" if means[c] is not None else f"missing ({present}/{len(t.datasets)} datasets)"
                    rows.append(_row(t, m, "average", c, k, mean=means[c], status=status))
                if t.protocol == "base2new":
                    h = harmonic(means["base"], means["new"])
                    rows.append(_row(t, m, "average", "H", k, mean=h, status="ok" if h is not None else "missing"))
            else:
                for src in t.datasets:
                    avg = t.target_average(m, src, k)
                    rows.append(_row(t, m, src, "target-average", k, mean=avg,
                                     status="ok" if avg is not None else "missing"))
    return rows


def write_csv(rows: Sequence[dict], path: Path, fields: Sequence[str] = CSV_FIELDS) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    return path
