"""Speed and memory benchmark: our compute settings against a reference-style configuration.

The command line of ``benchmarks/speed.py``: for each class count, method and phase it measures
both styles (timing, then peak memory), prints each record as it comes and rewrites the results
file after every group. benchmarks/README.md describes every option and the measured results.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

from .isolation import run_job, worker
from .memory import available_mib
from .report import MEMORY_KEYS, markdown, merge_record, pair_rows, record_key, write_results
from .spec import DEFAULT_METHODS, PHASES, STYLES, Spec


def _device_name(device: str) -> str:
    """The GPU's name, or the CPU's with its core count."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options (``argv``: default ``sys.argv[1:]``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), help="registered method names")
    p.add_argument("--backbone", default="ViT-B-16", help="open_clip model name or a built-in (tiny)")
    p.add_argument("--pretrained", default=None, help="open_clip tag or weights file (default: random weights)")
    p.add_argument("--classes", nargs="+", type=int, default=[100], help="class counts, e.g. 100 1000")
    p.add_argument("--batch-size", type=int, default=32, help="training batch")
    p.add_argument("--cocoop-batch-size", type=int, default=1,
                   help="CoCoOp's training batch (its published configs use 1: the text encoder runs B x n_cls "
                        "sequences per step)")
    p.add_argument("--eval-batch-size", type=int, default=100, help="test batch")
    p.add_argument("--steps", type=int, default=5, help="timed steps (training) / test batches (evaluation)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps / batches before timing")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--precision", default="auto", help="ours: auto, fp32, bf16, fp16, legacy-fp16")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="ours: encode at most this many text sequences at a time when a step has more")
    p.add_argument("--checkpointing", action="store_true",
                   help="ours: gradient checkpointing wherever text chunking is active")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES), help="what to measure")
    p.add_argument("--styles", nargs="+", choices=STYLES, default=list(STYLES),
                   help="ours and/or reference-style (ratios need both)")
    p.add_argument("--isolate", choices=("auto", "yes", "no"), default="auto",
                   help="one subprocess per measurement (auto: on the CPU, where peak RSS is per process)")
    p.add_argument("--measure", choices=("both", "timing", "memory", "components"), default="both",
                   help="both: timing and peak memory; components: time the image encoder's forward and the class text's forward+backward "
                        "apart (ours and reference-style interleaved), to explain a training-step ratio")
    p.add_argument("--timing", choices=("auto", "paired", "separate"), default="auto",
                   help="paired: ours and reference-style interleaved step by step in one process (auto: on "
                        "the CPU, where other load would otherwise skew the ratio); memory then comes from "
                        "short runs of their own (--memory-steps)")
    p.add_argument("--memory-steps", type=int, default=1, help="steps of the separate memory runs (paired timing)")
    p.add_argument("--mem-cap-gb", type=float, default=None,
                   help="CPU: abort a measurement past this RSS (default: 85%% of available memory)")
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/speed-<device>-<date>.json); "
                                               "the Markdown table goes beside it (.md)")
    p.add_argument("--append", action="store_true",
                   help="merge into an existing --out file (same method/classes/phase/style replaced)")
    p.add_argument("--report", default=None, metavar="JSON",
                   help="only rewrite the rows and the Markdown table of an existing results file")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with the hidden ``--worker``, one job of it in a worker subprocess)."""
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker), args.worker_out)
        return 0

    if args.report:
        path = Path(args.report)
        old = json.loads(path.read_text())
        write_results(path, old["meta"], old["results"])
        print(path.with_suffix(".md").read_text())
        return 0

    import torch

    from upt.methods import REGISTRY

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    unknown = [m for m in args.methods if m not in REGISTRY]
    if unknown:
        raise SystemExit(f"Unknown method(s) {unknown}; known: {sorted(REGISTRY)}")
    isolate = args.isolate == "yes" or (args.isolate == "auto" and not device.startswith("cuda"))
    date = datetime.date.today().isoformat()
    out = Path(args.out or f"benchmarks/results/speed-{device.split(':')[0]}-{date}.json")
    meta = {
        "date": date,
        "device": device,
        "device_name": _device_name(device),
        "backbone": args.backbone,
        "pretrained": args.pretrained,
        "precision": args.precision,
        "chunk_size": args.chunk_size,
        "checkpointing": args.checkpointing,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]) if argv is None else " ".join(argv),
        "isolated_subprocesses": isolate,
    }
    try:
        import open_clip

        meta["open_clip"] = open_clip.__version__
    except Exception:  # noqa: BLE001 - informative only
        pass

    results: list[dict] = []
    if args.append and out.exists():
        old = json.loads(out.read_text())
        results = old.get("results", [])
        meta = {**old.get("meta", {}), "runs": [*old.get("meta", {}).get("runs", []), meta]}
    else:
        meta["runs"] = [dict(meta)]

    cache: dict = {}
    timing = args.timing
    if timing == "auto":
        timing = "paired" if isolate and len(args.styles) == 2 else "separate"
    if timing == "paired" and (device.startswith("cuda") or len(args.styles) != 2):
        # paired setups share one backbone; reference-style casts it to half on CUDA
        raise SystemExit("--timing paired needs both styles and the CPU; use --timing separate")
    for n_cls in args.classes:
        for name in args.methods:
            for phase in args.phases:
                batch = args.batch_size
                if name == "cocoop" and phase == "train":
                    batch = min(args.batch_size, args.cocoop_batch_size)
                specs = {
                    style: Spec(
                        method=name, n_cls=n_cls, phase=phase, style=style, backbone=args.backbone,
                        pretrained=args.pretrained, batch_size=batch, eval_batch_size=args.eval_batch_size,
                        steps=args.steps, warmup=args.warmup, device=device, precision=args.precision,
                        chunk_size=args.chunk_size, checkpointing=args.checkpointing, threads=args.threads,
                    )
                    for style in args.styles
                }
                t0 = time.perf_counter()
                recs = _measure_group(specs, args, isolate, timing, cache)
                wall = time.perf_counter() - t0
                for rec in recs:
                    rec["wall_s"] = wall
                    rec["loadavg_after"] = os.getloadavg()
                    key = record_key(rec)
                    old = next((r for r in results if record_key(r) == key), None)
                    results = [r for r in results if record_key(r) != key] + [merge_record(old, rec)]
                    msg = rec.get("error") or rec.get("memory_error") or ", ".join(
                        x for x in (f"{rec['images_per_s']:.2f} img/s" if rec.get("images_per_s") else "",
                                    f"peak {rec['peak_mem_mib']:.0f} MiB" if rec.get("peak_mem_mib") is not None
                                    else "",
                                    " ".join(f"{k} {v:.2f} s" for k, v in rec.get("components_median_s", {}).items()))
                        if x)
                    print(f"[{name} n_cls={n_cls} {phase} {rec['style']}] {msg}", flush=True)
                print(f"  ({wall:.0f} s)", flush=True)
                write_results(out, meta, results)
    print(markdown(pair_rows(results), meta))
    return 0


def _measure_group(specs: dict[str, Spec], args, isolate: bool, timing: str, cache: dict) -> list[dict]:
    """Ours and reference-style for one (method, classes, phase): timing, then memory."""
    recs: dict[str, dict] = {}
    if args.measure == "components":
        job = {"components": [dataclasses.asdict(specs["ours"]), dataclasses.asdict(specs["reference"])]}
        return run_job(job, isolate, cache)
    if args.measure in ("both", "timing") and timing == "paired":
        for rec in run_job({"pair": [dataclasses.asdict(specs["ours"]), dataclasses.asdict(specs["reference"])]},
                           isolate, cache):
            recs[rec["style"]] = rec
    for style, spec in specs.items():
        if args.measure == "memory" or (timing == "paired" and args.measure == "both"):
            what = "memory"  # a short run of its own (paired timing holds two models in one process)
            spec = dataclasses.replace(spec, warmup=0, steps=args.memory_steps)
        elif timing == "separate":
            what = args.measure
        else:
            continue
        if isolate:
            avail = available_mib()
            spec.mem_cap_mib = args.mem_cap_gb * 1024 if args.mem_cap_gb else (0.85 * avail if avail else None)
        (rec,) = run_job({"spec": dataclasses.asdict(spec), "what": what}, isolate, cache)
        if what == "memory" and "error" in rec:
            rec["memory_error"] = rec.pop("error")
        if style in recs:
            recs[style].update({k: rec[k] for k in MEMORY_KEYS if k in rec})
        else:
            recs[style] = rec
    return list(recs.values())
