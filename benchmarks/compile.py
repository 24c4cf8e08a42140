"""torch.compile of the frozen towers: is it faster, and is it exact within fp32 rounding?

Times the frozen image tower (``encode_images``) and text tower (``encode_text`` of ``--classes``
prompts) eager and under ``torch.compile``, interleaved round by round after one warm-up call each
(the compile time is reported apart), and records the largest absolute difference of their outputs.

    python benchmarks/compile.py --backbone ViT-B-16 --device cpu --out benchmarks/results/cpu-compile.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import torch

    from upt.backbone import load_backbone
    from upt.engine.precision import resolve_precision
    from upt.engine.rundir import resolve_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="ViT-B-16")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    bb = load_backbone(args.backbone, None, device)
    prec = resolve_precision(args.precision, device)
    images = torch.randn(args.batch_size, 3, bb.preprocess.size, bb.preprocess.size, device=device)
    tokens = bb.text.tokenize([f"a photo of a class number {i}." for i in range(args.classes)]).to(device)
    towers = {"image": (bb.vision.encode_images, images), "text": (bb.model.encode_text, tokens)}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    rows = {}
    for name, (fn, x) in towers.items():
        compiled = torch.compile(fn)
        with torch.no_grad(), prec.autocast():
            eager_out = fn(x).float()
            sync()
            t0 = time.perf_counter()
            compiled_out = compiled(x).float()
            sync()
            compile_s = time.perf_counter() - t0
            times = {"eager": 0.0, "compiled": 0.0}
            for _ in range(args.rounds):
                for kind, f in (("eager", fn), ("compiled", compiled)):
                    sync()
                    t0 = time.perf_counter()
                    f(x)
                    sync()
                    times[kind] += time.perf_counter() - t0
        rows[name] = {"eager_s": times["eager"] / args.rounds, "compiled_s": times["compiled"] / args.rounds,
                      "speedup": times["eager"] / times["compiled"], "first_call_s": compile_s,
                      "max_abs_diff": (eager_out - compiled_out).abs().max().item(),
                      "max_abs_value": eager_out.abs().max().item()}
    record = {"benchmark": "torch.compile of the frozen towers", "command": " ".join([sys.executable, *sys.argv]),
              "backbone": args.backbone, "device": str(device), "precision": prec.name, "batch_size": args.batch_size,
              "classes": args.classes, "rounds": args.rounds, "torch": torch.__version__,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "towers": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# torch.compile of the frozen towers ({args.backbone}, {device}, {prec.name}, torch {torch.__version__})",
             "", f"`{record['command']}`", "", "| tower | eager s/call | compiled s/call | speedup | first compiled "
             "call s | max abs diff |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['eager_s']:.4f} | {r['compiled_s']:.4f} | {r['speedup']:.2f}× | "
                     f"{r['first_call_s']:.1f} | {r['max_abs_diff']:.2e} (of {r['max_abs_value']:.2f}) |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
