"""``upt info backbone NAME``: what a backbone would be built as, from open_clip's configs alone."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a backbone as it would be built (no download)",
                       description="Print as JSON what `--backbone NAME --pretrained TAG` builds: architecture, "
                                   "widths, layers, image size, preprocessing, activation (quick_gelu) and the "
                                   "methods it can run (and why not the others). Reads open_clip's configs only; "
                                   "nothing is downloaded.")
    p.add_argument("what", choices=["backbone"])
    p.add_argument("name", help="open_clip model name or a built-in (tiny)")
    p.add_argument("--pretrained", help="pretrained tag (e.g. openai, laion2b_s34b_b88k); default none")
    p.add_argument("--quick-gelu", choices=["auto", "true", "false"], default="auto",
                   help="the activation (auto: what the tag's weights were trained with)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from upt.backbone import backbone_info
    from upt.backbone.configs import method_support

    quick_gelu = {"auto": None, "true": True, "false": False}[args.quick_gelu]
    info = backbone_info(args.name, args.pretrained, quick_gelu)
    support = method_support(args.name)
    info["methods"] = [m for m, why in support.items() if why is None]
    info["unsupported_methods"] = {m: why for m, why in support.items() if why is not None}
    print(json.dumps(info, indent=2))
    return 0
