"""``upt eval``: evaluate a trained run on its own test split or on another dataset's."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run folder (own dataset, another one, base/new classes)")
    p.add_argument("--run", required=True, help="run folder written by upt train")
    p.add_argument("--dataset", help="evaluate on this dataset instead (domain generalisation, cross-dataset)")
    p.add_argument("--data-root", help="data root of --dataset (default: the run's)")
    p.add_argument("--classes", choices=["all", "base", "new"], help="class half to evaluate (default: the run's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--backbone", help="refuse to run unless the run was trained on this backbone")
    p.add_argument("--pretrained", help="refuse to run unless the run was trained with these weights")
    p.add_argument("--out", metavar="FILE",
                   help="write the evaluation record to FILE instead of RUN/eval/ (e.g. for a read-only run folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from upt.engine import eval_run

    r = eval_run(args.run, args.dataset, args.data_root, args.classes, args.device, args.backbone, args.pretrained,
                 out=args.out)
    print(json.dumps({"run": args.run, "dataset": r["eval_dataset"], "classes": r["classes"],
                      "accuracy": round(r["accuracy"], 2), "macro_f1": round(r["macro_f1"], 2),
                      "n_images": r["n_images"]}))
    return 0
