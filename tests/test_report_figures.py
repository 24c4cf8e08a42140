"""Report figures for papers: PNG at the requested dpi plus vector PDF and SVG, the legend outside
the axes, error bars (std over seeds) on base-to-new bars, an "Average" only over two or more datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.container import ErrorbarContainer
from PIL import Image

from test_report import assert_figure, figure_names, write_record
from upt.cli import main
from upt.errors import UptError
from upt.report import FigureOptions, build_report, build_tables, collect
from upt.report.bars import base2new_figure, transfer_figure
from upt.report.figures import PANEL, shots_figure


def _root(tmp_path: Path, datasets: tuple[str, ...] = ("dtd", "eurosat")) -> Path:
    root = tmp_path / "runs"
    for i, d in enumerate(datasets):
        write_record(root, "fewshot", "zeroshot", d, 0, 1, 40.0 + i)
        for k in (1, 2):
            for seed in (1, 2):
                write_record(root, "fewshot", "coop", d, k, seed, 40.0 + i + k + seed)
    for seed, (b, n) in enumerate(((80.0, 60.0), (82.0, 62.0)), 1):  # dtd: std 1.0 over seeds for base and new
        write_record(root, "base2new", "coop", "dtd", 16, seed, b, classes="base")
        write_record(root, "base2new", "coop", "dtd", 16, seed, n, classes="new", eval_dataset="dtd")
    if len(datasets) > 1:
        write_record(root, "base2new", "coop", "eurosat", 16, 1, 90.0, classes="base")  # one seed: no error bar
        write_record(root, "base2new", "coop", "eurosat", 16, 1, 70.0, classes="new", eval_dataset="eurosat")
    write_record(root, "base2new", "zeroshot", "dtd", 0, 1, 70.0, classes="base")
    write_record(root, "base2new", "zeroshot", "dtd", 0, 1, 72.0, classes="new", eval_dataset="dtd")
    write_record(root, "dg", "coop", "imagenet", 16, 1, 70.0)
    write_record(root, "dg", "coop", "imagenet", 16, 1, 60.0, eval_dataset="imagenetv2")
    return root


def test_png_pdf_and_svg_by_default_and_formats_and_dpi_on_request(tmp_path):
    root = _root(tmp_path)
    written = build_report(root)
    stems = ("fewshot-dtd", "fewshot-eurosat", "fewshot-average", "fewshot", "base2new", "dg")
    assert sorted(p.name for p in written["figures"]) == figure_names(*stems)
    for path in written["figures"]:
        assert_figure(path)
    with Image.open(root / "report" / "figures" / "fewshot-dtd.png") as im:
        assert (im.width, round(im.info["dpi"][0])) == (round(PANEL[0] * 200), 200)

    out = tmp_path / "png300"
    assert main(["report", str(root), "--out", str(out), "--formats", "png", "--dpi", "300"]) == 0
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(f"{s}.png" for s in stems)
    with Image.open(out / "figures" / "fewshot-dtd.png") as im:
        assert (im.width, round(im.info["dpi"][0])) == (round(PANEL[0] * 300), 300)


def test_unknown_format_is_one_clear_error(tmp_path, capsys):
    root = _root(tmp_path)
    assert main(["report", str(root), "--formats", "png,gif"]) == 2
    assert "Unknown figure format(s) ['gif']; choose from png, pdf, svg." in capsys.readouterr().err
    with pytest.raises(UptError, match="--dpi 10 is out of range"):
        FigureOptions(dpi=10)


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_legends_sit_outside_every_axes(tmp_path):
    tables = build_tables(collect(_root(tmp_path)))
    figures = [shots_figure(tables["fewshot"], ["dtd"]), shots_figure(tables["fewshot"], ["dtd", "eurosat", None]),
               base2new_figure(tables["base2new"], 16), transfer_figure(tables["dg"], "imagenet", 16)]
    for fig in figures:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (legend,) = fig.legends
        assert not any(ax.legend_ for ax in fig.axes)
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_visible():
                assert not _overlaps(box, ax.get_window_extent(renderer)), fig


def _error_bars(ax) -> list[tuple[float, float, float]]:
    """(x, low, high) of every error bar drawn on ``ax``."""
    out = []
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer):
            for segment in container.lines[2][0].get_segments():
                out.append((float(segment[0][0]), float(segment[0][1]), float(segment[1][1])))
    return out


def test_base2new_bars_carry_the_std_over_seeds(tmp_path):
    table = build_tables(collect(_root(tmp_path)))["base2new"]
    fig = base2new_figure(table, 16)
    base, new, h = fig.axes
    assert [t.get_text() for t in h.get_xticklabels()] == ["dtd", "eurosat", "Average"]
    # zero-shot (first series) has one value; coop's dtd bar (second series, first group) has std 1.0;
    # eurosat has one seed, the average and H are functions of means: none of them gets an error bar
    width = 0.8 / 2
    assert _error_bars(base) == [(0 + width / 2, 80.0, 82.0)]
    assert _error_bars(new) == [(0 + width / 2, 60.0, 62.0)]
    assert _error_bars(h) == []


def test_average_only_over_two_or_more_datasets(tmp_path):
    root = _root(tmp_path, ("dtd",))
    written = build_report(root, options=FigureOptions(("png",)))
    assert sorted(p.name for p in written["figures"]) == ["base2new.png", "dg.png", "fewshot-dtd.png", "fewshot.png"]
    tables = build_tables(collect(root))
    fig = shots_figure(tables["fewshot"], ["dtd"])
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["dtd"]
    (_, _, h) = base2new_figure(tables["base2new"], 16).axes
    assert [t.get_text() for t in h.get_xticklabels()] == ["dtd"]


def test_vector_files_are_reproducible_and_embed_truetype_fonts(tmp_path):
    root = _root(tmp_path)
    first = build_report(root, tmp_path / "first")["figures"]
    second = build_report(root, tmp_path / "second")["figures"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]  # no timestamps inside
    pdf = (tmp_path / "first" / "figures" / "dg.pdf").read_bytes()
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType, never Type 3 (journals reject it)
    assert b"/CreationDate" not in pdf
