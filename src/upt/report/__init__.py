"""Reports: every result record below a sweep root turned into the papers' tables and figures.

Typical use::

    written = build_report("runs/fewshot")            # -> runs/fewshot/report/{report.md, *.csv, figures/}

Aggregation conventions (std over seeds, averages only over complete rows, H of the means, one
value for zero-shot CLIP) are in :mod:`upt.report.aggregate` and printed under every table; what
makes two records comparable is in :mod:`upt.report.collect`. No record is left out silently:
the report's "Not in the tables" section names every record file the tables do not use, and why.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from upt.errors import UptError
from upt.report.aggregate import Cell, Table, base2new_table, fewshot_table, seed_cell, transfer_table
from upt.report.collect import Collected, Record, Skipped, collect, gather
from upt.report.figures import FORMATS, FigureOptions
from upt.report.longform import RECORD_FIELDS, table_rows, write_csv
from upt.report.tables import base2new_markdown, fewshot_markdown, transfer_markdown

log = logging.getLogger(__name__)
TITLES = {"fewshot": "Few-shot classification", "base2new": "Base-to-new generalisation",
          "dg": "Domain generalisation", "cross-dataset": "Cross-dataset transfer"}
RENDER = {"fewshot": fewshot_markdown, "base2new": base2new_markdown, "dg": transfer_markdown,
          "cross-dataset": transfer_markdown}

__all__ = ["FORMATS", "Cell", "Collected", "FigureOptions", "Record", "Skipped", "Table", "base2new_table",
           "build_report", "build_tables", "collect", "fewshot_table", "gather", "seed_cell", "transfer_table",
           "unused_records"]


def build_tables(records: list[Record], std: str = "population") -> dict[str, Table]:
    """The tables the records allow, by protocol name (absent protocols are left out)."""
    out = {"fewshot": fewshot_table(records, std), "base2new": base2new_table(records, std),
           "dg": transfer_table(records, "dg", std), "cross-dataset": transfer_table(records, "cross-dataset", std)}
    return {k: v for k, v in out.items() if v is not None}


def unused_records(records: list[Record], tables: dict[str, Table]) -> list[Skipped]:
    """The records no table uses, each with the reason."""
    used = {r.path for t in tables.values() for r in t.records}
    clashes = {path: other for t in tables.values() for path, other in t.clashes.items()}
    out = []
    for r in records:
        if r.path in used:
            continue
        if r.path in clashes:
            reason = f"falls in the same table cell and seed as `{clashes[r.path]}`, which is counted"
        elif r.protocol not in TITLES:
            reason = f"unknown protocol '{r.protocol}' (known: {', '.join(TITLES)})"
        elif r.protocol == "fewshot":
            reason = (f"a few-shot evaluation of {r.eval_dataset} ({r.classes} classes); few-shot tables use each run's "
                      "own results.json")
        elif r.protocol == "base2new":
            reason = (f"a base-to-new record of {r.eval_dataset} ({r.classes} classes); the table uses base and new "
                      f"classes of the training dataset {r.dataset}")
        else:
            reason = f"a {r.protocol} record of {r.classes} classes; transfer tables use all classes"
        out.append(Skipped(r.path, reason, r))
    return out


def build_report(root: str | Path, out: str | Path | None = None, std: str = "population",
                 figures: bool = True, options: FigureOptions | None = None) -> dict[str, list[Path]]:
    """Write Markdown and CSV tables and the figures for every result below ``root``.

    Args:
        root: folder searched for ``results.json`` and ``eval/*.json``.
        out: output folder (default ``ROOT/report``).
        std: ``population`` (ddof=0, CoOp's) or ``sample`` (ddof=1).
        figures: also draw the figures.
        options: figure formats and PNG dpi (default: PNG at 200 dpi, PDF and SVG).

    Returns:
        The written files, grouped: ``markdown``, ``csv``, ``figures``.
    """
    root = Path(root)
    if not root.is_dir():
        raise UptError(f"Report root {root} is not a folder; give the output root of a sweep.")
    found = gather(root)
    records = found.records
    if not records:
        raise UptError(f"No results.json found below {root}; run `upt sweep` or `upt train` into it first.")
    options = options or FigureOptions()
    out = Path(out) if out is not None else root / "report"
    (out / "figures").mkdir(parents=True, exist_ok=True)
    tables = build_tables(records, std)
    skipped = found.skipped + unused_records(records, tables)
    written: dict[str, list[Path]] = {"markdown": [], "csv": [], "figures": []}
    written["csv"].append(write_csv(_record_rows(records, skipped), out / "results.csv", RECORD_FIELDS))
    sections = [f"# Results below `{root}`\n\n{len(records)} result records in {len(tables)} protocol(s); "
                f"{len(skipped)} record file(s) not in the tables (listed at the end)."]
    for name, table in tables.items():
        sections.append(f"## {TITLES[name]}\n\n{RENDER[name](table)}")
        written["csv"].append(write_csv(table_rows(table), out / f"{name}.csv"))
        if figures:
            written["figures"] += _figures(name, table, out / "figures", options)
    sections += [_failures(root), _skipped(skipped)]
    path = out / "report.md"
    path.write_text("\n\n".join(s for s in sections if s) + "\n")
    written["markdown"].append(path)
    log.info("report of %d records -> %s", len(records), out)
    return written


def _record_rows(records: list[Record], skipped: list[Skipped]) -> list[dict]:
    """results.csv: every record found, with ``in_tables`` = yes or the reason it is not."""
    why = {s.path: s.reason for s in skipped}
    listed = {r.path for r in records}
    rows = [{**{k: getattr(r, k) for k in RECORD_FIELDS if k != "in_tables"}, "in_tables": why.get(r.path, "yes")}
            for r in [*records, *(s.record for s in skipped if s.record is not None and s.path not in listed)]]
    return rows + [{"path": s.path, "in_tables": s.reason} for s in skipped if s.record is None]


def _figures(name: str, table: Table, out: Path, options: FigureOptions) -> list[Path]:
    from upt.report import bars, figures

    if name == "fewshot":
        return figures.fewshot_figures(table, out, options)
    if name == "base2new":
        return bars.base2new_figures(table, out, options)
    return bars.transfer_figures(table, out, options)


def _skipped(skipped: list[Skipped]) -> str:
    """Every record file the tables do not use, and why, as a Markdown list."""
    if not skipped:
        return ""
    lines = [f"- `{s.path}`: {s.reason}" for s in sorted(skipped, key=lambda s: s.path)]
    return "## Not in the tables\n\n" + "\n".join(lines)


def _failures(root: Path) -> str:
    """The sweep's recorded failures, if any, as a Markdown list."""
    from upt.sweep.runner import FAILURES_FILE

    lines = []
    for path in sorted(root.rglob(FAILURES_FILE)):
        for line in path.read_text().splitlines():
            try:
                f = json.loads(line)
            except json.JSONDecodeError:
                continue
            lines.append(f"- `{f.get('run')}` ({f.get('step')}): {f.get('error')}")
    return "## Failed runs\n\n" + "\n".join(lines) if lines else ""
