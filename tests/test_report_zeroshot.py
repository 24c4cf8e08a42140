"""Zero-shot CLIP in reports: one value per dataset whatever shots and seed its records carry (run
once by new sweeps, repeated per K and seed by old ones), shown in every K table as not depending on
K, and drawn as a dashed "zero-shot CLIP" line above every method's line."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from test_report import write_record
from upt.report import build_report, build_tables, collect
from upt.report.figures import ZERO_SHOT, shots_figure

ZS = {"dtd": 44.25, "eurosat": 48.5}


def _trained(root: Path) -> None:
    for d, base in (("dtd", 40.0), ("eurosat", 50.0)):
        for k in (1, 2, 4):
            for seed in (1, 2):
                write_record(root, "fewshot", "coop", d, k, seed, base + k + seed)


def _new_sweep(root: Path) -> Path:
    _trained(root)
    for d, acc in ZS.items():
        write_record(root, "fewshot", "zeroshot", d, 0, 1, acc)  # once per dataset, recorded as 0 shots
    return root


def _old_sweep(root: Path) -> Path:
    _trained(root)
    for d, acc in ZS.items():
        for k in (1, 2, 4):
            for seed in (1, 2):
                write_record(root, "fewshot", "zeroshot", d, k, seed, acc)  # the same run, repeated per cell
    return root


def _tables(md: str) -> dict[str, list[str]]:
    """Table lines by heading: the header, then one per row."""
    out = {}
    for part in md.split("### ")[1:]:
        title, body = part.split("\n", 1)
        out[title] = [line for line in body.splitlines() if line.startswith("| ")]
    return out


@pytest.mark.parametrize("make", [_new_sweep, _old_sweep])
def test_zero_shot_is_one_value_in_every_k_table(tmp_path, make):
    root = make(tmp_path / "runs")
    build_report(root, figures=False)
    md = (root / "report" / "report.md").read_text()
    tables = _tables(md)
    assert list(tables) == ["1 shot", "2 shots", "4 shots"]  # no table for the zero-shot record's 0 shots
    for k, lines in zip((1, 2, 4), tables.values(), strict=True):
        assert lines[1] == "| zeroshot (same for every K) | 44.25 | 48.50 | 46.38 |"
        assert lines[2] == f"| coop | {41.5 + k:.2f} ± 0.50 | {51.5 + k:.2f} ± 0.50 | {46.5 + k:.2f} |"
    n = 2 if make is _new_sweep else 12
    assert (f"one value per cell from all its records ({n} here, whatever shots and seed they carry)") in md
    with (root / "report" / "fewshot.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == "zeroshot"]
    assert [(r["dataset"], r["shots"], r["mean"], r["std"], r["status"]) for r in rows] == [
        ("dtd", "any", "44.25", "", "ok"), ("eurosat", "any", "48.5", "", "ok"), ("average", "any", "46.375", "", "ok")]


def test_old_and_new_sweeps_report_zero_shot_identically(tmp_path):
    reports = []
    for make in (_new_sweep, _old_sweep):
        root = make(tmp_path / make.__name__)
        build_report(root, figures=False)
        reports.append(_tables((root / "report" / "report.md").read_text()))
    assert reports[0] == reports[1]


def test_zero_shot_records_that_disagree_show_their_spread(tmp_path):
    root = _new_sweep(tmp_path / "runs")
    write_record(root, "fewshot", "zeroshot", "dtd", 16, 2, 46.25)  # not the same as the first: shown, not hidden
    build_report(root, figures=False)
    lines = _tables((root / "report" / "report.md").read_text())["1 shot"]
    assert lines[1] == "| zeroshot (same for every K) | 45.25 ± 1.00 | 48.50 | 46.88 |"


def test_zero_shot_is_a_dashed_line_on_top_of_every_method(tmp_path):
    root = _new_sweep(tmp_path / "runs")
    write_record(root, "fewshot", "upt", "dtd", 2, 1, ZS["dtd"])  # ties zero-shot exactly: must stay visible
    table = build_tables(collect(root))["fewshot"]
    fig = shots_figure(table, ["dtd"])
    (ax,) = [a for a in fig.axes if a.get_visible()]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == ZERO_SHOT]
    assert (line.get_linestyle(), list(line.get_ydata())) == ("--", [ZS["dtd"], ZS["dtd"]])
    assert [c.get_label() for c in ax.containers] == ["coop", "upt"]  # each an error-bar line
    assert line.get_zorder() > max(ln.get_zorder() for ln in ax.get_lines() if ln is not line)
    assert line.get_zorder() > max(c.get_zorder() for c in ax.collections)  # error bars included
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [ZERO_SHOT, "coop", "upt"]
    # the x axis is the trained methods' shots: the zero-shot record's 0 shots is no point on it
    assert list(ax.get_xticks()) == [1, 2, 4]
