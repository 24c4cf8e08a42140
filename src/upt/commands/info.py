"""``upt info backbone NAME``: what a backbone would be built as, from open_clip's configs alone."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a backbone as it would be built (no download)",
                       description="Print as JSON what `--backbone NAME --pretrained TAG` builds: architecture, "
                                   "widths, layers, image size, preprocessing and activation (quick_gelu). "
                                   "Reads open_clip's configs only; nothing is downloaded.")
    p.add_argument("what", choices=["backbone"])
    p.add_argument("name", help="open_clip model name or a built-in (tiny)")
    p.add_argument("--pretrained", help="pretrained tag (e.g. openai, laion2b_s34b_b88k); default none")
    p.add_argument("--quick-gelu", choices=["auto", "true", "false"], default="auto",
                   help="the activation (auto: what the tag's weights were trained with)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from upt.backbone import backbone_info

    quick_gelu = {"auto": None, "true": True, "false": False}[args.quick_gelu]
    print(json.dumps(backbone_info(args.name, args.pretrained, quick_gelu), indent=2))
    return 0
