"""PNG figures in the papers' style: accuracy vs shots (one line per method), grouped bars.

Matplotlib is used through its object API with the Agg canvas only, so importing this module
never changes the caller's pyplot backend. A missing value is never drawn as a point or a bar:
lines break there and bar groups carry a ``missing`` mark.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from upt.report.aggregate import Table, harmonic
from upt.report.collect import short_name
from upt.report.tables import shots_text

NAN = float("nan")


def new_figure(cols: int = 1, rows: int = 1, size: tuple[float, float] = (4.2, 3.4)):
    """A Figure with an Agg canvas and its grid of axes (a flat list)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * cols, size[1] * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _val(x: float | None) -> float:
    return NAN if x is None else x


def shots_axes(ax, t: Table, dataset: str | None) -> None:
    """Accuracy vs shots on ``ax`` for ``dataset`` (None: the average over datasets)."""
    drawn = False
    for m in t.methods:
        if dataset is None:
            ys, errs = [_val(t.average("acc", m, k)[0]) for k in t.shots], []
        else:
            cells = [t.cell("acc", m, dataset, k) for k in t.shots]
            ys = [_val(c.mean) for c in cells]
            errs = [c.std or 0.0 for c in cells]
        if all(math.isnan(y) for y in ys):
            continue
        if dataset is None:  # an average of means has no seed spread to draw
            ax.plot(t.shots, ys, marker="o", markersize=4, label=m)
        else:
            ax.errorbar(t.shots, ys, yerr=errs, marker="o", markersize=4, capsize=3, label=m)
        drawn = True
    ax.set_xscale("log", base=2)
    ax.set_xticks(t.shots, [str(k) for k in t.shots])
    ax.minorticks_off()
    ax.set_xlabel("shots per class")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Average over datasets" if dataset is None else short_name(dataset))
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "missing", transform=ax.transAxes, ha="center", va="center", color="gray")


def fewshot_figures(t: Table, out: Path) -> list[Path]:
    """One PNG per dataset, one for the average, and all panels in ``fewshot.png``."""
    paths = []
    for d in [*t.datasets, None]:
        fig, (ax,) = new_figure()
        shots_axes(ax, t, d)
        paths.append(save(fig, out / f"fewshot-{'average' if d is None else short_name(d)}.png"))
    panels = [*t.datasets, None]
    cols = min(4, len(panels))
    fig, axes = new_figure(cols, math.ceil(len(panels) / cols))
    for ax, d in zip(axes, panels, strict=False):
        shots_axes(ax, t, d)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    paths.append(save(fig, out / "fewshot.png"))
    return paths


def bars(ax, groups: Sequence[str], series: dict[str, Sequence[float | None]], title: str) -> None:
    """Grouped bars: one group per entry of ``groups``, one bar per series; None is marked missing."""
    width = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [_val(v) for v in values], width, label=label)
        for x, v in zip(xs, values, strict=True):
            if v is None:
                ax.text(x, 1, "missing", rotation=90, ha="center", va="bottom", fontsize=6, color="gray")
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    top = max([v for values in series.values() for v in values if v is not None], default=1.0)
    ax.set_ylim(0, top * 1.25 + 1)  # room for the legend above the bars
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", ncol=min(len(series), 4))


def base2new_figures(t: Table, out: Path) -> list[Path]:
    """Per shot count: Base, New and H bars for every dataset and the average."""
    paths = []
    groups = [*map(short_name, t.datasets), "Average"]
    for k in t.shots:
        fig, axes = new_figure(3, 1, size=(max(4.0, 0.6 * len(groups) * max(len(t.methods), 2) / 2), 3.6))
        for ax, column in zip(axes, ("base", "new", "H"), strict=True):
            series = {}
            for m in t.methods:
                if column == "H":
                    vals = [t.harmonic(m, d, k) for d in t.datasets]
                    vals.append(harmonic(t.average("base", m, k)[0], t.average("new", m, k)[0]))
                else:
                    vals = [t.mean(column, m, d, k) for d in t.datasets] + [t.average(column, m, k)[0]]
                series[m] = vals
            bars(ax, groups, series, {"base": "Base classes", "new": "New classes", "H": "Harmonic mean"}[column])
        suffix = "" if len(t.shots) == 1 else f"-{k}shot"
        paths.append(save(fig, out / f"base2new{suffix}.png"))
    return paths


def transfer_figures(t: Table, out: Path) -> list[Path]:
    """Per source and shot count: bars for the source, every target and the target average."""
    paths = []
    targets = [c for c in t.columns if c != "source"]
    for src in t.datasets:
        for k in t.shots:
            groups = [f"{short_name(src)} (source)", *map(short_name, targets), "Target avg"]
            series = {m: [*(t.mean(c, m, src, k) for c in t.columns), t.target_average(m, src, k)]
                      for m in t.methods}
            fig, (ax,) = new_figure(size=(max(4.5, 0.5 * len(groups) * max(len(t.methods), 2) / 2), 3.6))
            bars(ax, groups, series, f"{t.protocol}: {short_name(src)}, {shots_text(k)}")
            many = len(t.datasets) > 1 or len(t.shots) > 1
            paths.append(save(fig, out / (f"{t.protocol}-{short_name(src)}-{k}shot.png" if many
                                          else f"{t.protocol}.png")))
    return paths
