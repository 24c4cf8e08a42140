"""``upt list methods|datasets|backbones``: what the package knows."""

from __future__ import annotations

import argparse
import contextlib
import logging
import textwrap
from collections.abc import Iterator

WIDTH = 100  # every table fits a terminal this wide: its widest column wraps
N_CLASSES = 100  # parameter counts of `upt list methods` are for this many classes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list methods, datasets or backbones")
    p.add_argument("what", choices=["methods", "datasets", "backbones"], nargs="?", default="methods")
    p.add_argument("--backbone", default="ViT-B-16",
                   help="backbone whose architecture the parameter counts are for (methods; default ViT-B-16, "
                        "upt train's default; built with random weights, nothing is downloaded)")
    p.add_argument("--pretrained", default=None,
                   help="pretrained tag of --backbone (default none: the counts depend only on the architecture)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.what == "backbones":
        from upt.backbone import list_backbones

        _table(list_backbones(), ["name", "methods", "pretrained"], wrap={"methods": 24, "pretrained": None})
    elif args.what == "datasets":
        from upt.data.catalog import list_datasets

        _table(list_datasets(), ["name", "classes", "folder", "template"], wrap={"template": None})
    else:
        _list_methods(args.backbone, args.pretrained)
    return 0


def _list_methods(name: str, pretrained: str | None) -> None:
    """The methods with their trainable parameters on ``name``'s architecture, for :data:`N_CLASSES` classes."""
    from upt.backbone import load_backbone
    from upt.methods import describe_methods

    with _quiet():  # open_clip warns that random weights are random: here that is the point
        backbone = load_backbone(name, pretrained)
    weights = f"weights {pretrained}" if backbone.pretrained else "random weights, no download"
    print(textwrap.fill(f"trainable parameters for {N_CLASSES} classes on {name}'s architecture ({weights}):", WIDTH))
    rows = [{**r, "description": r["description"] + (f" [n/a: {r['note']}]" if r["note"] else "")}
            for r in describe_methods(backbone, N_CLASSES)]
    _table(rows, ["name", "trainable", "description"], wrap={"description": None})


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence warnings (of other libraries) within the block."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _table(rows: list[dict], columns: list[str], wrap: dict[str, int | None] | None = None,
           width: int = WIDTH) -> None:
    """Print ``rows`` as aligned columns.

    ``wrap`` maps columns to wrap at word boundaries to their width: a number, or None for what is left
    of ``width`` once the other columns are placed (one such column), so that every line fits.
    """
    wrap = wrap or {}
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    widths.update({c: min(widths[c], cap) for c, cap in wrap.items() if cap is not None})
    for c in (c for c, cap in wrap.items() if cap is None):
        widths[c] = max(10, min(widths[c], width - sum(widths[o] + 2 for o in columns if o != c)))
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        cells = {c: textwrap.wrap(str(r.get(c, "")), widths[c], break_on_hyphens=False) or [""] if c in wrap
                 else [str(r.get(c, ""))] for c in columns}
        for i in range(max(len(v) for v in cells.values())):
            print("  ".join((cells[c][i] if i < len(cells[c]) else "").ljust(widths[c]) for c in columns).rstrip())
