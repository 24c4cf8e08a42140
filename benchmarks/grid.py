"""The whole grid with and without the feature store: wall time and image-encoder passes.

One few-shot grid (by default the three photo sets of ``../shared/data`` × 1, 4, 16 shots × 2 seeds ×
zero-shot, linear probe, CoOp, CoCoOp and UPT on the ``tiny`` backbone, 2 epochs) is planned twice,
once with the store (``ROOT/with/feature-store``) and once with ``compute.feature_store=off``; the
two are run interleaved, cell by cell in one process, so both see the same machine load. Images
passed through the image tower are counted per cell. The results (per method: runs, seconds and
passes with and without the store, their ratios; the whole grid) go to ``--out`` as JSON and
Markdown. Accuracies of the two runs of every cell are compared and must be equal.

    python benchmarks/grid.py --out benchmarks/results/cpu-2core-feature-store.json
    python benchmarks/grid.py --backbone ViT-B-16 --device cuda --epochs 5 --out gpu-feature-store.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("UPT_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=None, help="comma-separated; default: the three sets of ../shared/data")
    p.add_argument("--data-root", default=None, help="data root for catalog datasets (default: ../shared/data/dtd10)")
    p.add_argument("--methods", default="zeroshot,linear-probe,coop,cocoop,upt")
    p.add_argument("--shots", default="1,4,16")
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--backbone", default="tiny")
    p.add_argument("--pretrained", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default=None)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--work", default=None, help="where the two sweep roots go (default: a temporary folder)")
    p.add_argument("--out", required=True, help="results JSON; the Markdown table goes beside it")
    return p.parse_args(argv)


def count_encoded() -> list[int]:
    """Count images entering any image tower of this process, frozen or prompted (every path goes through
    ``VisionTower.embed`` on a ViT; the returned cell is updated in place)."""
    from upt.backbone import vision

    seen = [0]
    original = vision.VisionTower.embed

    def counting(self, images):
        seen[0] += len(images)
        return original(self, images)

    vision.VisionTower.embed = counting
    return seen


def plan(args: argparse.Namespace, root: Path, store: bool):
    from upt.sweep import load_grid, plan_jobs

    datasets = args.datasets or ",".join([f"folder:{SHARED / 'data' / 'flowers5'}", f"folder:{SHARED / 'data' / 'cifar10'}",
                                          "dtd"])
    grid = load_grid(None, {"methods": args.methods, "datasets": datasets,
                            "shots": [int(s) for s in args.shots.split(",")],
                            "seeds": [int(s) for s in args.seeds.split(",")], "backbone": args.backbone,
                            "pretrained": args.pretrained, "device": args.device, "precision": args.precision,
                            "epochs": args.epochs, "data_root": args.data_root or str(SHARED / "data" / "dtd10"),
                            "set": ["data.num_workers=0", *([] if store else ["compute.feature_store=off"])]})
    return plan_jobs(grid, root)


def main(argv: list[str] | None = None) -> int:
    import logging

    from upt.sweep import run_sweep

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    work = Path(args.work or tempfile.mkdtemp(prefix="upt-grid-bench-"))
    seen = count_encoded()
    pairs = list(zip(plan(args, work / "with", True), plan(args, work / "without", False), strict=True))
    rows: dict[str, dict] = {}
    start = time.perf_counter()
    for n, (with_job, without_job) in enumerate(pairs, 1):
        row = rows.setdefault(with_job.config.method, {"runs": 0, "seconds": [0.0, 0.0], "passes": [0, 0]})
        row["runs"] += 1
        for side, (job, root) in enumerate(((with_job, work / "with"), (without_job, work / "without"))):
            before, t0 = seen[0], time.perf_counter()
            summary = run_sweep([job], root)
            if not summary.ok:
                raise SystemExit(f"{job.name} failed: {summary.failures[0].error}")
            row["seconds"][side] += time.perf_counter() - t0
            row["passes"][side] += seen[0] - before
        a, b = (json.loads((j.run_dir / "results.json").read_text()) for j in (with_job, without_job))
        if (a["accuracy"], a["per_class_accuracy"]) != (b["accuracy"], b["per_class_accuracy"]):
            raise SystemExit(f"{with_job.name}: accuracy {a['accuracy']} with the store, {b['accuracy']} without")
        print(f"[{n}/{len(pairs)}] {with_job.name}", file=sys.stderr)
    total = {"runs": sum(r["runs"] for r in rows.values()),
             "seconds": [sum(r["seconds"][i] for r in rows.values()) for i in (0, 1)],
             "passes": [sum(r["passes"][i] for r in rows.values()) for i in (0, 1)]}
    c = pairs[0][0].filled
    record = {"benchmark": "feature store over a few-shot grid", "command": " ".join([sys.executable, *sys.argv]),
              "backbone": c.backbone, "pretrained": c.pretrained, "device": c.device, "precision": c.precision,
              "epochs": args.epochs, "datasets": sorted({j.config.dataset for j, _ in pairs}),
              "shots": args.shots, "seeds": args.seeds, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "wall_seconds": time.perf_counter() - start, "methods": rows, "total": total,
              "results_equal": True}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return 0


def markdown(record: dict) -> str:
    """The results table: per method and for the grid, time and passes with and without the store."""
    lines = [f"# Feature store over a few-shot grid ({record['backbone']}, {record['device']}, {record['precision']})",
             "", f"`{record['command']}`", "",
             f"Datasets {', '.join(record['datasets'])}; shots {record['shots']}; seeds {record['seeds']}; "
             f"{record['epochs']} epochs; {record['machine']}. Both sides ran interleaved, cell by cell, in one "
             "process; every cell's accuracy was equal with and without the store.", "",
             "| method | runs | seconds, no store | with store | time ratio | encoder passes, no store | with store "
             "| pass ratio |", "|---|---|---|---|---|---|---|---|"]
    for name, r in [*record["methods"].items(), ("whole grid", record["total"])]:
        (ts, tn), (ps, pn) = r["seconds"], r["passes"]
        lines.append(f"| {name} | {r['runs']} | {tn:.1f} | {ts:.1f} | {tn / ts:.2f}× | {pn:,} | {ps:,} | "
                     f"{pn / max(ps, 1):.2f}× |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
