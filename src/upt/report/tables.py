"""Markdown renderings of the aggregated tables; a missing cell is written as missing.

Every table opens with its provenance line (backbone, weights, precision, data folders:
:mod:`upt.report.provenance`); a shot-free method (zero-shot CLIP) is one row with one value per
dataset, marked as the same for every shot count.
"""

from __future__ import annotations

from collections.abc import Sequence

from upt.report.aggregate import ANY, STD, Cell, Table, harmonic
from upt.report.collect import Record, short_name
from upt.report.provenance import precisions, provenance_line, varies

MISSING_TEXT = "missing"
SHOT_FREE_MARK = " (same for every K)"


def fmt(x: float | None) -> str:
    return MISSING_TEXT if x is None else f"{x:.2f}"


def cell_text(cell: Cell, n_seeds: int) -> str:
    """``mean ± std``, with ``(n=k)`` when only k of the table's seeds are present (never for shot-free cells)."""
    if cell.missing:
        return MISSING_TEXT
    text = f"{cell.mean:.2f}" + (f" ± {cell.std:.2f}" if cell.std is not None else "")
    return text + (f" (n={cell.n})" if cell.seeds and cell.n < n_seeds else "")


def average_text(value: float | None, present: int, total: int) -> str:
    return fmt(value) if value is not None else f"{MISSING_TEXT} ({present}/{total})"


def footer(t: Table) -> str:
    ddof = STD[t.std]
    kind = ("population std, ddof=0: numpy's default, as CoOp's parse_test_res.py" if ddof == 0
            else "sample std, ddof=1")
    seeds = ", ".join(map(str, t.seeds)) or "(none: no trained method)"
    lines = [f"Accuracy (%), mean ± std over seeds {seeds} ({kind}); one seed has no ±; "
             "(n=k): only k seeds present. `missing`: no result, never filled in.",
             "Averages are means of the per-dataset means, given only when every dataset has the cell "
             "(else `missing (present/total)`)."]
    if t.protocol in ("dg", "cross-dataset"):
        lines[1] = "Target average: mean over the target datasets, given only when every target has a result."
    if t.protocol == "base2new":
        lines.append("H = 2BN/(B+N) of the mean base and new accuracies; the average's H uses the averaged B and N.")
    if t.shot_free:
        n = sum(1 for r in t.records if r.shot_free)
        lines.append(f"`{SHOT_FREE_MARK.strip()}`: zero-shot CLIP is trained on no images, so it depends on neither "
                     f"shots nor seed: one value per cell from all its records ({n} here, whatever shots and seed "
                     "they carry), repeated in each table for comparison; ± only if those records disagree.")
    return "\n".join(f"_{line}_  " for line in lines)


def shots_text(k: int | None) -> str:
    if k is ANY:
        return "no training images"
    return f"{k} shot" if k == 1 else f"{k} shots"


def row_name(t: Table, method: str) -> str:
    return method + SHOT_FREE_MARK if method in t.shot_free else method


def _md(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def _section(t: Table, title: str, records: list[Record], header: list[str], rows: dict[str, list[str]]) -> str:
    """``### title``, the provenance line of ``records``, then one row per method (a Precision column if it varies)."""
    with_precision = varies(records)
    if with_precision:
        header = [header[0], "Precision", *header[1:]]
    body = []
    for m, cells in rows.items():
        extra = [", ".join(precisions([r for r in records if r.label == m])) or "-"] if with_precision else []
        body.append([row_name(t, m), *extra, *cells])
    return f"### {title}\n\n{provenance_line(records)}\n\n" + _md(header, body)


def fewshot_markdown(t: Table) -> str:
    """One table per shot count: methods x datasets, then the average over datasets."""
    names = [short_name(d) for d in t.datasets]
    parts = []
    for k in t.shots:
        rows = {}
        for m in t.methods:
            avg, present = t.average("acc", m, k)
            rows[m] = [*(cell_text(t.cell("acc", m, d, k), len(t.seeds)) for d in t.datasets),
                       average_text(avg, present, len(t.datasets))]
        title = shots_text(k) if k is not ANY else "Zero-shot only (no training images)"
        parts.append(_section(t, title, t.subset(None, k), ["Method", *names, "Average"], rows))
    return "\n\n".join(parts) + "\n\n" + footer(t)


def base2new_markdown(t: Table) -> str:
    """Per shot count: for each dataset (and the average) Base, New and H of every method."""
    parts = []
    for k in t.shots:
        for d in [*t.datasets, None]:
            rows = {}
            for m in t.methods:
                if d is None:
                    (b, nb), (n, nn) = t.average("base", m, k), t.average("new", m, k)
                    total = len(t.datasets)
                    rows[m] = [average_text(b, nb, total), average_text(n, nn, total), fmt(harmonic(b, n))]
                else:
                    rows[m] = [cell_text(t.cell("base", m, d, k), len(t.seeds)),
                               cell_text(t.cell("new", m, d, k), len(t.seeds)), fmt(t.harmonic(m, d, k))]
            title = "Average over datasets" if d is None else short_name(d)
            parts.append(_section(t, f"{title} ({shots_text(k)})", t.subset(d, k), ["Method", "Base", "New", "H"],
                                  rows))
    return "\n\n".join(parts) + "\n\n" + footer(t)


def transfer_markdown(t: Table) -> str:
    """Per source and shot count: the source's own accuracy, each target, the target average."""
    targets = [c for c in t.columns if c != "source"]
    parts = []
    for src in t.datasets:
        for k in t.shots:
            rows = {m: [*(cell_text(t.cell(c, m, src, k), len(t.seeds)) for c in t.columns),
                        fmt(t.target_average(m, src, k))] for m in t.methods}
            header = ["Method", f"{short_name(src)} (source)", *map(short_name, targets), "Target average"]
            parts.append(_section(t, f"{short_name(src)} → targets ({shots_text(k)})", t.subset(src, k), header,
                                  rows))
    return "\n\n".join(parts) + "\n\n" + footer(t)
