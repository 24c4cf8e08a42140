"""``upt predict``: top-k classes of new images, one JSON line per image.

An image that cannot be read (corrupt, missing, a folder without images) gets a row of its own,
``{"path": ..., "error": "<one sentence>"}``, and the others are still classified; the exit code is
then 1.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images with a trained run (JSON lines)",
                       description="Print one JSON line per image: its top-k classes, or an error row for an "
                                   "image that cannot be read (the exit code is then 1).")
    p.add_argument("--run", required=True, help="run folder written by upt train, or hf-hub:user/name")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--classnames", help="comma-separated classes to choose from instead of the trained ones")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from upt.predict import Predictor

    names = [c.strip() for c in args.classnames.split(",") if c.strip()] if args.classnames else None
    predictor = Predictor(args.run, args.device, names)
    total = failed = 0
    for row in predictor.predict(args.images, topk=args.topk, errors="report"):
        total += 1
        failed += "error" in row
        print(json.dumps(row), flush=True)
    if failed:
        print(f"upt: {failed} of {total} inputs could not be classified; see their \"error\" rows.", file=sys.stderr)
        return 1
    return 0
