"""``upt report``: turn every result below a folder into the papers' tables and figures."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from upt.report.figures import DPI, FORMATS

    p = sub.add_parser("report", help="tables (Markdown, CSV) and figures (PNG, PDF, SVG) from a sweep's results",
                       description="Read every results.json and eval/*.json below ROOT and write few-shot, "
                       "base-to-new, domain-generalisation and cross-dataset tables and figures. Records the "
                       "tables do not use are listed, with the reason, under 'Not in the tables'.")
    p.add_argument("root", help="folder to search (a sweep's output root)")
    p.add_argument("--out", help="output folder (default ROOT/report)")
    p.add_argument("--std", choices=["population", "sample"], default="population",
                   help="std over seeds: population (ddof=0, as CoOp's scripts; default) or sample (ddof=1)")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument("--formats", default=",".join(FORMATS),
                   help=f"figure file formats, comma-separated (default {','.join(FORMATS)})")
    p.add_argument("--dpi", type=int, default=DPI, help=f"resolution of the PNG figures (default {DPI})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from upt.report import build_report
    from upt.report.figures import FigureOptions

    options = FigureOptions(tuple(f.strip().lower() for f in args.formats.split(",") if f.strip()), args.dpi)
    written = build_report(args.root, args.out, std=args.std, figures=not args.no_figures, options=options)
    for kind, paths in written.items():
        for path in paths:
            print(f"{kind:9s} {path}")
    return 0
