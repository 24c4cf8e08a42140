"""Figures in the papers' style: accuracy vs shots, one line per method (bars: :mod:`upt.report.bars`).

Every figure is written as PNG (``dpi``, 200 by default) and as vector PDF and SVG (``formats``),
sized for print: one panel is a paper column wide (3.3 in) and its fonts are 7.5-9 pt there.
Zero-shot CLIP, which depends on no shots, is a dashed horizontal line labelled "zero-shot CLIP",
drawn above every other line; the legend sits below the axes, never over data.

Matplotlib is used through its object API with the Agg canvas only, so importing this module
never changes the caller's pyplot backend. A missing value is never drawn as a point or a bar:
lines break there and bar groups carry a ``missing`` mark.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from upt.errors import UptError
from upt.report.aggregate import ANY, Table
from upt.report.collect import short_name

log = logging.getLogger(__name__)
NAN = float("nan")
FORMATS = ("png", "pdf", "svg")
DPI = 200
PANEL = (3.3, 2.4)  # inches: one panel, a paper column wide
GRID_PANEL = (2.3, 1.9)  # inches: three across a page's text width
ZERO_SHOT = "zero-shot CLIP"
STYLE = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7.5,
         "xtick.labelsize": 7.5, "ytick.labelsize": 7.5, "lines.linewidth": 1.3, "axes.spines.top": False,
         "axes.spines.right": False, "pdf.fonttype": 42, "svg.hashsalt": "upt", "savefig.pad_inches": 0.03}
METADATA = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}  # no timestamps: same bytes each time


def style(fn: Callable) -> Callable:
    """Run ``fn`` (which builds or writes a figure) under :data:`STYLE`, leaving global settings alone."""

    @functools.wraps(fn)
    def styled(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return styled


@dataclass(frozen=True)
class FigureOptions:
    """Which files every figure is written as: ``formats`` (png, pdf, svg) and the PNG's ``dpi``."""

    formats: tuple[str, ...] = FORMATS
    dpi: int = DPI

    def __post_init__(self) -> None:
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise UptError(f"Unknown figure format(s) {bad or '(none given)'}; choose from {', '.join(FORMATS)}.")
        if not 50 <= self.dpi <= 2400:
            raise UptError(f"--dpi {self.dpi} is out of range; give 50 to 2400 (200 or more for print).")


def legend_columns(labels: Sequence[str], width: float) -> int:
    """How many legend entries fit side by side across ``width`` inches (7.5-pt text)."""
    if not labels:
        return 1
    entry = 0.45 + 0.06 * max(len(label) for label in labels)  # the line sample, then the text
    return max(1, min(len(labels), int(width / entry)))


def new_figure(cols: int = 1, rows: int = 1, size: tuple[float, float] = PANEL, legend: Sequence[str] = (),
               sharex: bool = False):
    """A Figure with an Agg canvas and its grid of axes (a flat list), with room below for ``legend``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width = size[0] * cols
    lines = math.ceil(len(legend) / legend_columns(legend, width)) if legend else 0
    fig = Figure(figsize=(width, size[1] * rows + (0.12 + 0.17 * lines if lines else 0.0)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=sharex)
    return fig, [ax for row in axes for ax in row]


def legend_below(fig, axes: Sequence) -> None:
    """One legend for the whole figure, below the axes (each label once), as many entries a row as fit."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", frameon=False,
                   ncol=legend_columns(list(entries), fig.get_figwidth()))


@style  # pdf.fonttype and svg.hashsalt are read when the file is written
def save(fig, stem: Path, options: FigureOptions | None = None) -> list[Path]:
    """Write ``fig`` as ``stem.<format>`` for every format of ``options``; the paths written."""
    options = options or FigureOptions()
    paths = []
    for fmt in options.formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(path, format=fmt, dpi=options.dpi, metadata=METADATA[fmt])
        paths.append(path)
    return paths


def file_name(dataset: str) -> str:
    """A dataset's display name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", short_name(dataset)).strip("_") or "dataset"


def display(t: Table, method: str) -> str:
    """A method's legend label: zero-shot as "zero-shot CLIP" (with its ``[backbone, weights]`` if any)."""
    if method not in t.shot_free:
        return method
    return ZERO_SHOT + (method[method.index(" ["):] if " [" in method else "")


def colors(t: Table) -> dict[str, str]:
    """One colour per method, the same in every panel; a single zero-shot line is black."""
    trained = [m for m in t.methods if m not in t.shot_free]
    out = {m: f"C{i % 10}" for i, m in enumerate(trained)}
    free = [m for m in t.methods if m in t.shot_free]
    out.update({m: "black" if len(free) == 1 else f"C{(len(trained) + i) % 10}" for i, m in enumerate(free)})
    return out


def _val(x: float | None) -> float:
    return NAN if x is None else x


def shots_axes(ax, t: Table, dataset: str | None) -> None:
    """Accuracy vs shots on ``ax`` for ``dataset`` (None: the average over datasets)."""
    drawn = False
    palette = colors(t)
    for m in t.methods:
        if m in t.shot_free:
            value = t.average("acc", m, ANY)[0] if dataset is None else t.mean("acc", m, dataset, ANY)
            if value is not None:  # on top of every line: zero-shot must stay visible where a method ties it
                ax.axhline(value, color=palette[m], linestyle="--", linewidth=1.4, zorder=5, label=display(t, m))
                drawn = True
            continue
        if dataset is None:
            ys, errs = [_val(t.average("acc", m, k)[0]) for k in t.shots], None  # a mean of means: no seed spread
        else:
            cells = [t.cell("acc", m, dataset, k) for k in t.shots]
            ys, errs = [_val(c.mean) for c in cells], [c.std or 0.0 for c in cells]
        if all(math.isnan(y) for y in ys):
            continue
        ax.errorbar(t.shots, ys, yerr=errs, marker="o", markersize=3.5, capsize=2.5, color=palette[m], label=m,
                    zorder=2)
        drawn = True
    ax.set_xscale("log", base=2)
    ax.set_xticks(t.shots, [str(k) for k in t.shots])
    ax.minorticks_off()
    ax.set_xlabel("shots per class")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Average over datasets" if dataset is None else short_name(dataset))
    ax.grid(alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, "missing", transform=ax.transAxes, ha="center", va="center", color="gray")


@style
def shots_figure(t: Table, panels: Sequence[str | None]):
    """Accuracy vs shots, one panel per entry of ``panels`` (None: the average), one legend below.

    One panel is a column wide; a grid is three panels (a page's text width) across.
    """
    single = len(panels) == 1
    cols = 1 if single else min(3, len(panels))
    fig, axes = new_figure(cols, math.ceil(len(panels) / cols), PANEL if single else GRID_PANEL,
                           legend=[display(t, m) for m in t.methods])
    for i, (ax, d) in enumerate(zip(axes, panels, strict=False)):
        shots_axes(ax, t, d)
        if i % cols:  # axis titles once per row and column of the grid
            ax.set_ylabel("")
        if i + cols < len(panels):
            ax.set_xlabel("")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    legend_below(fig, axes)
    return fig


def fewshot_figures(t: Table, out: Path, options: FigureOptions | None = None) -> list[Path]:
    """One figure per dataset, one for the average (two or more datasets), and all panels in ``fewshot``."""
    if t.shots == [ANY]:
        log.info("no few-shot figure: only zero-shot results, which have no shots axis")
        return []
    average = [None] if len(t.datasets) >= 2 else []
    paths = []
    for d in [*t.datasets, *average]:
        paths += save(shots_figure(t, [d]), out / f"fewshot-{'average' if d is None else file_name(d)}", options)
    paths += save(shots_figure(t, [*t.datasets, *average]), out / "fewshot", options)
    return paths
