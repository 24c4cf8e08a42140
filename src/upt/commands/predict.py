"""``upt predict``: top-k classes of new images, one JSON line per image."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images with a trained run (JSON lines)")
    p.add_argument("--run", required=True, help="run folder written by upt train")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--classnames", help="comma-separated classes to choose from instead of the trained ones")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from upt.predict import Predictor

    names = [c.strip() for c in args.classnames.split(",") if c.strip()] if args.classnames else None
    predictor = Predictor(args.run, args.device, names)
    for row in predictor.predict(args.images, topk=args.topk):
        print(json.dumps(row), flush=True)
    return 0
