"""``upt train``: train a method on a dataset's few-shot split and evaluate it on the test split."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a method and evaluate it (writes a run folder)",
                       description="Train a method on K shots per class and evaluate it on the test split. "
                                   "Options left unset come from --config presets, else the method's paper "
                                   "settings for the protocol (configs/methods/METHOD.yaml), else the protocol's "
                                   "preset, else the defaults named below; --print-config shows the result.")
    p.add_argument("--method", help="upt, coop, cocoop, vpt, maple, kgcoop, promptsrc, clip-lora, tip-adapter, "
                                    "tip-adapter-f, linear-probe, zeroshot (default: upt); "
                                    "its paper settings for the protocol apply to every option left unset")
    p.add_argument("--dataset", help="a catalog name (upt list datasets) or folder:PATH (default shapes)")
    p.add_argument("--data-root", help="folder holding the benchmark datasets (default $UPT_DATA_ROOT or ./data)")
    p.add_argument("--shots", type=int, help="images per class (default 16; 0 = the whole training split)")
    p.add_argument("--seed", type=int, help="few-shot subset and initialisation seed (default 1)")
    p.add_argument("--backbone", help="open_clip model name or tiny (default: ViT-B-16); "
                                      "`upt list backbones` shows the methods each can run")
    p.add_argument("--pretrained", help="open_clip pretrained tag or weights file (default openai; none: random)")
    p.add_argument("--classes", choices=["all", "base", "new"],
                   help="train on all classes or the base half (default: all; base under --protocol base2new)")
    p.add_argument("--protocol", help="label recorded in results (fewshot, base2new, dg, cross-dataset)")
    p.add_argument("--epochs", type=int,
                   help="default: the method's paper setting for the protocol, e.g. CoCoOp 10; MaPLe 5 (dg, "
                        "cross-dataset: 2); CoOp by shots (dg, cross-dataset: 50); else by shots: 1 -> 50, "
                        "2 or 4 -> 100, 8 or 16 -> 200 (ImageNet: 50)")
    p.add_argument("--batch-size", type=int,
                   help="default: the method's paper setting for the protocol, e.g. CoOp 32, CoCoOp 1, MaPLe 4, "
                        "UPT 32, VPT 32; else 32")
    p.add_argument("--lr", type=float,
                   help="default: the method's paper setting for the protocol, e.g. CoOp, CoCoOp, UPT, VPT 0.002, "
                        "MaPLe 0.0035 (dg, cross-dataset: 0.0026); else 0.002")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (smoke runs)")
    p.add_argument("--workers", type=int, help="data loading processes (default: 2; 0 loads in the main process)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--devices", type=int, help="data-parallel processes on this machine (one per GPU; CPU: gloo)")
    p.add_argument("--precision", help="auto, fp32, bf16, fp16, legacy-fp16")
    p.add_argument("--config", action="append", default=[], metavar="YAML",
                   help="preset file(s) or packaged preset names, applied in order")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. optim.lr=0.01 or method_config.n_t=8")
    p.add_argument("--out", help="run folder (default runs/<dataset>-<method>-<shots>shot-seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line instead of a summary")
    p.add_argument("--print-config", action="store_true",
                   help="print the fully resolved config (the run folder's config.yaml) and exit; writes nothing")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """The run config the flags, ``--config`` presets and ``--set`` overrides resolve to."""
    from upt.engine.config import SHORT_KEYS, resolve, settings_layer

    return resolve(settings_layer({k: getattr(args, k, None) for k in SHORT_KEYS}), args.config, args.set)


def run(args: argparse.Namespace) -> int:
    from upt.engine import train_run
    from upt.engine.config import default_out

    cfg = config_from_args(args)
    if args.print_config:
        from upt.engine.config import config_text, fill_defaults

        print(config_text(fill_defaults(cfg)), end="")
        return 0
    results = train_run(cfg, args.out or default_out(cfg), resume=args.resume, overwrite=args.overwrite)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return 0
    out = args.out or default_out(cfg)
    if args.json:
        print(json.dumps({"run": out, "accuracy": round(results["accuracy"], 2),
                          "macro_f1": round(results["macro_f1"], 2), "n_images": results["n_images"]}))
    else:
        from upt.commands.eval import summary_line

        print(summary_line(results, Path(out) / "results.json"))
    return 0
