"""``upt export``: one ONNX or TorchScript file from images to class probabilities, with a JSON sidecar."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run as ONNX or TorchScript (images -> probabilities)",
                       description="Write one file mapping a batch of preprocessed images (N×3×S×S float32) to "
                                   "class probabilities, and FILE.json beside it: class names, preprocessing and "
                                   "the run's provenance. The file is checked against the run before it is kept.")
    p.add_argument("--run", required=True, help="run folder written by upt train, or hf-hub:user/name")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write, e.g. model.onnx or model.pt")
    p.add_argument("--format", help="onnx or torchscript (default: from the suffix of --out: .onnx, .pt)")
    p.add_argument("--json", action="store_true", help="print the sidecar as one JSON line instead of a summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from upt.export import export_run, sidecar_path

    sidecar = export_run(args.run, args.out, args.format)
    if args.json:
        print(json.dumps(sidecar))
        return 0
    n = len(sidecar["classnames"])
    print(f"{sidecar['format']} · {sidecar['provenance']['method']} · {n} class{'' if n == 1 else 'es'} · input "
          f"N×3×{sidecar['preprocess']['crop']}×{sidecar['preprocess']['crop']} · largest difference from the run "
          f"{sidecar['check']:.1e} · {args.out} + {sidecar_path(args.out)}")
    return 0
