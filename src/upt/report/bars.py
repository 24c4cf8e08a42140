"""Grouped-bar figures: base-to-new (Base, New, H) and transfer (source, targets, target average).

Bars of one dataset carry error bars of ± the std over seeds (the table's convention); averages
and H are functions of means and have none. The "Average" group is drawn only for two or more
datasets, the "Target avg" group only for two or more targets. Formats, sizes and the legend
below the axes follow :mod:`upt.report.figures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from upt.report.aggregate import Table, harmonic
from upt.report.collect import short_name
from upt.report.figures import (
    GRID_PANEL,
    FigureOptions,
    colors,
    display,
    file_name,
    legend_below,
    new_figure,
    save,
    style,
)
from upt.report.tables import shots_text

TITLES = {"base": "Base classes", "new": "New classes", "H": "Harmonic mean (H)"}
Series = dict[str, Sequence[float | None]]


def bars(ax, groups: Sequence[str], series: Series, title: str, errors: Series | None = None,
         palette: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> None:
    """Grouped bars: one group per entry of ``groups``, one bar per series; None is marked missing.

    Args:
        errors: ± per bar (None or absent: no error bar).
        palette, labels: colour and legend label per series (default: the colour cycle, its key).
    """
    width = 0.8 / max(len(series), 1)
    top = 1.0
    for i, (key, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        errs = (errors or {}).get(key) or [None] * len(values)
        ax.bar(xs, [float("nan") if v is None else v for v in values], width, label=(labels or {}).get(key, key),
               color=(palette or {}).get(key))
        spread = [(x, v, e) for x, v, e in zip(xs, values, errs, strict=True) if v is not None and e]
        if spread:  # only where a std exists: an average or H gets no (zero-length) error bar
            ax.errorbar([p[0] for p in spread], [p[1] for p in spread], yerr=[p[2] for p in spread], fmt="none",
                        ecolor="black", elinewidth=0.8, capsize=1.5, capthick=0.8)
        for x, v, e in zip(xs, values, errs, strict=True):
            if v is None:
                ax.text(x, 1, "missing", rotation=90, ha="center", va="bottom", fontsize=6, color="gray")
            else:
                top = max(top, v + (e or 0.0))
    ax.set_xticks(range(len(groups)), groups, rotation=30 if len(groups) > 3 else 0,
                  ha="right" if len(groups) > 3 else "center")
    ax.set_ylim(0, top * 1.05)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def bar_colors(t: Table) -> dict[str, str]:
    """:func:`~upt.report.figures.colors`, with a single zero-shot series grey rather than black."""
    palette = colors(t)
    return {m: "0.55" if c == "black" else c for m, c in palette.items()}


def _width(groups: int, methods: int, least: float = 3.3) -> float:
    """Inches: wide enough for every bar (at least ``least``), at most a page's text width."""
    return min(7.0, max(least, 0.8 + groups * (0.11 * methods + 0.15)))


@style
def base2new_figure(t: Table, k: int | None):
    """Base, New and H bars for every dataset (and the average of two or more).

    Three panels side by side when they fit a page's width, else stacked in three rows.
    """
    average = len(t.datasets) >= 2
    groups = [*map(short_name, t.datasets), *(["Average"] if average else [])]
    width = _width(len(groups), len(t.methods), least=0.0)
    side = width <= GRID_PANEL[0]
    fig, axes = new_figure(3 if side else 1, 1 if side else 3, size=GRID_PANEL if side else (width, 1.9),
                           sharex=not side, legend=[display(t, m) for m in t.methods])
    for ax, column in zip(axes, ("base", "new", "H"), strict=True):
        series, errors = {}, {}
        for m in t.methods:
            if column == "H":
                vals = [t.harmonic(m, d, k) for d in t.datasets]
                avg = harmonic(t.average("base", m, k)[0], t.average("new", m, k)[0])
                errs = [None] * len(vals)
            else:
                vals = [t.mean(column, m, d, k) for d in t.datasets]
                avg = t.average(column, m, k)[0]
                errs = [t.cell(column, m, d, k).std for d in t.datasets]
            series[m] = vals + ([avg] if average else [])
            errors[m] = errs + ([None] if average else [])
        bars(ax, groups, series, TITLES[column], errors, bar_colors(t), {m: display(t, m) for m in t.methods})
    for ax in axes[1:] if side else axes[:-1]:  # axis labels once
        if side:
            ax.set_ylabel("")
        else:
            ax.tick_params(labelbottom=False)
    legend_below(fig, axes)
    return fig


def base2new_figures(t: Table, out: Path, options: FigureOptions | None = None) -> list[Path]:
    """Per shot count: Base, New and H bars for every dataset and the average."""
    paths = []
    for k in t.shots:
        suffix = "" if len(t.shots) == 1 else f"-{'any' if k is None else k}shot"
        paths += save(base2new_figure(t, k), out / f"base2new{suffix}", options)
    return paths


@style
def transfer_figure(t: Table, src: str, k: int | None):
    """Bars for the source, every target and (two or more targets) the target average."""
    targets = [c for c in t.columns if c != "source"]
    average = len(targets) >= 2
    groups = [f"{short_name(src)} (source)", *map(short_name, targets), *(["Target avg"] if average else [])]
    series = {m: [*(t.mean(c, m, src, k) for c in t.columns), *([t.target_average(m, src, k)] if average else [])]
              for m in t.methods}
    errors = {m: [*(t.cell(c, m, src, k).std for c in t.columns), *([None] if average else [])] for m in t.methods}
    fig, (ax,) = new_figure(size=(_width(len(groups), len(t.methods)), 2.4), legend=[display(t, m) for m in t.methods])
    bars(ax, groups, series, f"{t.protocol}: {short_name(src)}, {shots_text(k)}", errors, bar_colors(t),
         {m: display(t, m) for m in t.methods})
    legend_below(fig, [ax])
    return fig


def transfer_figures(t: Table, out: Path, options: FigureOptions | None = None) -> list[Path]:
    """Per source and shot count: bars for the source, every target and the target average."""
    paths = []
    many = len(t.datasets) > 1 or len(t.shots) > 1
    for src in t.datasets:
        for k in t.shots:
            stem = f"{t.protocol}-{file_name(src)}-{'any' if k is None else k}shot" if many else t.protocol
            paths += save(transfer_figure(t, src, k), out / stem, options)
    return paths
