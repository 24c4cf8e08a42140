"""``upt eval``: evaluate a trained run on its own test split or on another dataset's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run folder (own dataset, another one, base/new classes)",
                       description="Evaluate a trained run and print one line: accuracy, macro-F1, the number "
                                   "of images and where the evaluation record went (--json: a JSON line instead).")
    p.add_argument("--run", required=True, help="run folder written by upt train, or hf-hub:user/name "
                   "(its records go to the downloaded copy's eval/ unless --out)")
    p.add_argument("--dataset", help="evaluate on this dataset instead (domain generalisation, cross-dataset)")
    p.add_argument("--data-root", help="data root of --dataset (default: the run's)")
    p.add_argument("--classes", choices=["all", "base", "new"], help="class half to evaluate (default: the run's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--backbone", help="refuse to run unless the run was trained on this backbone")
    p.add_argument("--pretrained", help="refuse to run unless the run was trained with these weights")
    p.add_argument("--out", metavar="FILE",
                   help="write the evaluation record to FILE instead of RUN/eval/ (e.g. for a read-only run folder)")
    p.add_argument("--json", action="store_true",
                   help="print the result as one JSON line (run, dataset, classes, accuracy, macro_f1, n_images, "
                        "record) instead of the summary")
    p.set_defaults(func=run)


def summary_line(results: dict, record: str | Path) -> str:
    """One line for people: ``accuracy 71.43% · macro-F1 70.12 · 90 images · record -> PATH``.

    ``results`` is an evaluation record (``results.json`` or ``eval/*.json``); ``upt train`` can
    print the same line for its run folder's ``results.json``.
    """
    n = results["n_images"]
    return (f"accuracy {results['accuracy']:.2f}% · macro-F1 {results['macro_f1']:.2f} · "
            f"{n} image{'' if n == 1 else 's'} · record -> {record}")


def run(args: argparse.Namespace) -> int:
    from upt.engine import eval_run
    from upt.engine.rundir import eval_record_path
    from upt.hub import resolve_run

    run_dir = resolve_run(args.run)
    r = eval_run(run_dir, args.dataset, args.data_root, args.classes, args.device, args.backbone, args.pretrained,
                 out=args.out)
    record = eval_record_path(run_dir, r["eval_dataset"], r["classes"], args.out)  # where eval_run wrote it
    if args.json:
        print(json.dumps({"run": args.run, "dataset": r["eval_dataset"], "classes": r["classes"],
                          "accuracy": round(r["accuracy"], 2), "macro_f1": round(r["macro_f1"], 2),
                          "n_images": r["n_images"], "record": str(record)}))
    else:
        print(summary_line(r, record))
    return 0
