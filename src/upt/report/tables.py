"""Markdown and CSV renderings of the aggregated tables; a missing cell is written as missing."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from upt.report.aggregate import STD, Cell, Table, harmonic
from upt.report.collect import short_name

MISSING_TEXT = "missing"
CSV_FIELDS = ("protocol", "method", "dataset", "eval", "shots", "n_seeds", "seeds", "mean", "std", "status")


def fmt(x: float | None) -> str:
    return MISSING_TEXT if x is None else f"{x:.2f}"


def cell_text(cell: Cell, n_seeds: int) -> str:
    """``mean ± std``, with ``(n=k)`` when only k of the table's seeds are present."""
    if cell.missing:
        return MISSING_TEXT
    text = f"{cell.mean:.2f}" + (f" ± {cell.std:.2f}" if cell.std is not None else "")
    return text + (f" (n={cell.n})" if cell.n < n_seeds else "")


def average_text(value: float | None, present: int, total: int) -> str:
    return fmt(value) if value is not None else f"{MISSING_TEXT} ({present}/{total})"


def footer(t: Table) -> str:
    ddof = STD[t.std]
    kind = ("population std, ddof=0: numpy's default, as CoOp's parse_test_res.py" if ddof == 0
            else "sample std, ddof=1")
    seeds = ", ".join(map(str, t.seeds))
    lines = [f"Accuracy (%), mean ± std over seeds {seeds} ({kind}); one seed has no ±; "
             "(n=k): only k seeds present. `missing`: no result, never filled in.",
             "Averages are means of the per-dataset means, given only when every dataset has the cell "
             "(else `missing (present/total)`)."]
    if t.protocol in ("dg", "cross-dataset"):
        lines[1] = "Target average: mean over the target datasets, given only when every target has a result."
    if t.protocol == "base2new":
        lines.append("H = 2BN/(B+N) of the mean base and new accuracies; the average's H uses the averaged B and N.")
    return "\n".join(f"_{line}_  " for line in lines)


def shots_text(k: int) -> str:
    return f"{k} shot" if k == 1 else f"{k} shots"


def _md(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def fewshot_markdown(t: Table) -> str:
    """One table per shot count: methods x datasets, then the average over datasets."""
    names = [short_name(d) for d in t.datasets]
    parts = []
    for k in t.shots:
        rows = []
        for m in t.methods:
            avg, present = t.average("acc", m, k)
            rows.append([m, *(cell_text(t.cell("acc", m, d, k), len(t.seeds)) for d in t.datasets),
                         average_text(avg, present, len(t.datasets))])
        parts.append(f"### {shots_text(k)}\n\n" + _md(["Method", *names, "Average"], rows))
    return "\n\n".join(parts) + "\n\n" + footer(t)


def base2new_markdown(t: Table) -> str:
    """Per shot count: for each dataset (and the average) Base, New and H of every method."""
    parts = []
    for k in t.shots:
        for d in [*t.datasets, None]:
            rows = []
            for m in t.methods:
                if d is None:
                    (b, nb), (n, nn) = t.average("base", m, k), t.average("new", m, k)
                    total = len(t.datasets)
                    rows.append([m, average_text(b, nb, total), average_text(n, nn, total), fmt(harmonic(b, n))])
                else:
                    rows.append([m, cell_text(t.cell("base", m, d, k), len(t.seeds)),
                                 cell_text(t.cell("new", m, d, k), len(t.seeds)), fmt(t.harmonic(m, d, k))])
            title = "Average over datasets" if d is None else short_name(d)
            parts.append(f"### {title} ({shots_text(k)})\n\n" + _md(["Method", "Base", "New", "H"], rows))
    return "\n\n".join(parts) + "\n\n" + footer(t)


def transfer_markdown(t: Table) -> str:
    """Per source and shot count: the source's own accuracy, each target, the target average."""
    targets = [c for c in t.columns if c != "source"]
    parts = []
    for src in t.datasets:
        for k in t.shots:
            rows = [[m, *(cell_text(t.cell(c, m, src, k), len(t.seeds)) for c in t.columns),
                     fmt(t.target_average(m, src, k))] for m in t.methods]
            header = ["Method", f"{short_name(src)} (source)", *map(short_name, targets), "Target average"]
            parts.append(f"### {short_name(src)} → targets ({shots_text(k)})\n\n" + _md(header, rows))
    return "\n\n".join(parts) + "\n\n" + footer(t)


def _row(t: Table, method: str, dataset: str, column: str, k: int, cell: Cell | None = None,
         mean: float | None = None, status: str | None = None) -> dict:
    if cell is not None:
        status = "missing" if cell.missing else ("ok" if cell.n == len(t.seeds) else "partial-seeds")
        mean = cell.mean
    return {"protocol": t.protocol, "method": method, "dataset": dataset, "eval": column, "shots": k,
            "n_seeds": cell.n if cell else "", "seeds": " ".join(map(str, cell.seeds)) if cell else "",
            "mean": "" if mean is None else round(mean, 4),
            "std": "" if cell is None or cell.std is None else round(cell.std, 4), "status": status}


def table_rows(t: Table) -> list[dict]:
    """Long-format rows: one per (method, dataset, column, shots), then the averages (``dataset=average``)."""
    rows = [_row(t, m, d, c, k, cell=t.cell(c, m, d, k))
            for m in t.methods for k in t.shots for d in t.datasets for c in t.columns]
    if t.protocol == "base2new":
        rows += [_row(t, m, d, "H", k, mean=t.harmonic(m, d, k), status="ok" if t.harmonic(m, d, k) is not None
                      else "missing") for m in t.methods for k in t.shots for d in t.datasets]
    for m in t.methods:
        for k in t.shots:
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
