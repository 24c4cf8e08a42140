"""``upt list methods|datasets|backbones``: what the package knows."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list methods, datasets or backbones")
    p.add_argument("what", choices=["methods", "datasets", "backbones"], nargs="?", default="methods")
    p.add_argument("--backbone", default="tiny", help="backbone for parameter counts (methods)")
    p.add_argument("--pretrained", default=None, help="pretrained tag of --backbone")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.what == "backbones":
        from upt.backbone import list_backbones

        _table(list_backbones(), ["name", "pretrained"])
    elif args.what == "datasets":
        from upt.data.catalog import list_datasets

        _table(list_datasets(), ["name", "classes", "folder", "template"])
    else:
        from upt.backbone import load_backbone
        from upt.methods import describe_methods

        backbone = load_backbone(args.backbone, args.pretrained)
        print(f"trainable parameters for backbone {args.backbone}:")
        _table(describe_methods(backbone), ["name", "trainable", "description"])
    return 0


def _table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip())
