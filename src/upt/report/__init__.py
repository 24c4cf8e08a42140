"""Reports: every result record below a sweep root turned into the papers' tables and figures.

Typical use::

    written = build_report("runs/fewshot")            # -> runs/fewshot/report/{report.md, *.csv, figures/}

Aggregation conventions (std over seeds, averages only over complete rows, H of the means) are
in :mod:`upt.report.aggregate` and printed under every table.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from upt.errors import UptError
from upt.report.aggregate import Cell, Table, base2new_table, fewshot_table, seed_cell, transfer_table
from upt.report.collect import Record, collect
from upt.report.tables import (
    base2new_markdown,
    fewshot_markdown,
    table_rows,
    transfer_markdown,
    write_csv,
)

log = logging.getLogger(__name__)
RECORD_FIELDS = ("protocol", "method", "dataset", "eval_dataset", "classes", "shots", "seed", "backbone",
                 "pretrained", "accuracy", "macro_f1", "kind", "path")
TITLES = {"fewshot": "Few-shot classification", "base2new": "Base-to-new generalisation",
          "dg": "Domain generalisation", "cross-dataset": "Cross-dataset transfer"}

__all__ = ["Cell", "Record", "Table", "base2new_table", "build_report", "build_tables", "collect", "fewshot_table",
           "seed_cell", "transfer_table"]


def build_tables(records: list[Record], std: str = "population") -> dict[str, Table]:
    """The tables the records allow, by protocol name (absent protocols are left out)."""
    out = {"fewshot": fewshot_table(records, std), "base2new": base2new_table(records, std),
           "dg": transfer_table(records, "dg", std), "cross-dataset": transfer_table(records, "cross-dataset", std)}
    return {k: v for k, v in out.items() if v is not None}


def build_report(root: str | Path, out: str | Path | None = None, std: str = "population",
                 figures: bool = True) -> dict[str, list[Path]]:
    """Write Markdown and CSV tables and PNG figures for every result below ``root``.

    Args:
        root: folder searched for ``results.json`` and ``eval/*.json``.
        out: output folder (default ``ROOT/report``).
        std: ``population`` (ddof=0, CoOp's) or ``sample`` (ddof=1).
        figures: also draw the PNG figures.

    Returns:
        The written files, grouped: ``markdown``, ``csv``, ``figures``.
    """
    root = Path(root)
    if not root.is_dir():
        raise UptError(f"Report root {root} is not a folder; give the output root of a sweep.")
    records = collect(root)
    if not records:
        raise UptError(f"No results.json found below {root}; run `upt sweep` or `upt train` into it first.")
    out = Path(out) if out is not None else root / "report"
    (out / "figures").mkdir(parents=True, exist_ok=True)
    found = build_tables(records, std)
    written: dict[str, list[Path]] = {"markdown": [], "csv": [], "figures": []}
    written["csv"].append(write_csv([{k: getattr(r, k) for k in RECORD_FIELDS} for r in records],
                                    out / "results.csv", RECORD_FIELDS))
    sections = [f"# Results below `{root}`\n\n{len(records)} result records."]
    render = {"fewshot": fewshot_markdown, "base2new": base2new_markdown, "dg": transfer_markdown,
              "cross-dataset": transfer_markdown}
    for name, table in found.items():
        sections.append(f"## {TITLES[name]}\n\n{render[name](table)}")
        written["csv"].append(write_csv(table_rows(table), out / f"{name}.csv"))
        if figures:
            written["figures"] += _figures(name, table, out / "figures")
    sections.append(_failures(root))
    path = out / "report.md"
    path.write_text("\n\n".join(s for s in sections if s) + "\n")
    written["markdown"].append(path)
    log.info("report of %d records -> %s", len(records), out)
    return written


def _figures(name: str, table: Table, out: Path) -> list[Path]:
    from upt.report import figures

    if name == "fewshot":
        return figures.fewshot_figures(table, out)
    if name == "base2new":
        return figures.base2new_figures(table, out)
    return figures.transfer_figures(table, out)


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
