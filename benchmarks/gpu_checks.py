"""Checks that need a GPU: every precision trains and evaluates, and data-parallel training over two
processes (NCCL) matches one process.

For each precision (``bf16``, ``fp16`` with its grad scaler, ``legacy-fp16``, ``fp32``) a short UPT
and CoOp run on ``--backbone`` (random weights: nothing is downloaded) must finish with finite losses
and write its results; with two or more GPUs, ``--devices 2`` (NCCL) must give the same accuracy as
one process and prompts within bf16 rounding of it. One JSON record per check goes to ``--out``,
and the exit status is 1 when any check fails.

    python benchmarks/gpu_checks.py --dataset folder:DATA --out gpu-checks.json
    python benchmarks/gpu_checks.py --device cpu --precisions fp32 bf16 --backbone tiny ...  # the plumbing, on a CPU
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path


def _run(args: argparse.Namespace, out: Path, method: str, precision: str, devices: int = 1) -> dict:
    from upt.cli import main

    argv = ["train", "--method", method, "--dataset", args.dataset, "--backbone", args.backbone, "--pretrained",
            "none", "--shots", "4", "--epochs", "2", "--device", args.device, "--precision", precision,
            "--workers", "0", "--devices", str(devices), "--out", str(out), "--overwrite"]
    start = time.perf_counter()
    rc = main(argv)
    record = {"method": method, "precision": precision, "devices": devices, "rc": rc,
              "seconds": round(time.perf_counter() - start, 1)}
    if rc == 0:
        results = json.loads((out / "results.json").read_text())
        losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
        record.update(accuracy=results["accuracy"], precision_used=results["precision"], losses=losses,
                      finite=all(math.isfinite(v) for v in losses))
    record["ok"] = rc == 0 and record.get("finite", False)
    return record


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="a small dataset, e.g. folder:<a drawn toy task>")
    p.add_argument("--backbone", default="ViT-B-16")
    p.add_argument("--device", default="cuda")
    p.add_argument("--precisions", nargs="+", default=["bf16", "fp16", "legacy-fp16", "fp32"])
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="upt-gpu-checks-"))
    records = []
    for precision in args.precisions:
        for method in ("upt", "coop"):
            records.append(_run(args, work / f"{method}-{precision}", method, precision))
            print(json.dumps(records[-1]), flush=True)
    gpus = torch.cuda.device_count() if args.device.startswith("cuda") else 0
    if gpus >= 2:
        from safetensors.torch import load_file

        one, two = work / "one", work / "two"
        a, b = _run(args, one, "upt", "bf16", 1), _run(args, two, "upt", "bf16", 2)
        check = {"check": "devices 2 (nccl) against one process", "one": a, "two": b}
        if a["ok"] and b["ok"]:
            pa, pb = load_file(str(one / "prompt.safetensors")), load_file(str(two / "prompt.safetensors"))
            diff = max((pa[k].float() - pb[k].float()).abs().max().item() for k in pa)
            check.update(max_prompt_difference=diff, same_accuracy=a["accuracy"] == b["accuracy"])
        check["ok"] = bool(check.get("same_accuracy")) and check.get("max_prompt_difference", 1.0) < 1e-2
        records.append(check)
        print(json.dumps({k: v for k, v in check.items() if k not in ("one", "two")}), flush=True)
    else:
        records.append({"check": "devices 2 (nccl)", "skipped": f"{gpus} GPU(s) visible", "ok": True})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"backbone": args.backbone, "device": args.device, "torch": torch.__version__,
                               "gpus": gpus, "checks": records}, indent=2) + "\n")
    failed = [r for r in records if not r["ok"]]
    print(f"{len(records) - len(failed)}/{len(records)} checks passed -> {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
