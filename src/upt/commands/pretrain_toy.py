"""``upt pretrain-toy``: rebuild the ``toy`` backbone's packaged weights from the package's recipe."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain-toy", help="pretrain the toy CLIP on drawn, captioned shapes (a few minutes, CPU)",
                       description="Run the toy backbone's pretraining recipe (upt.toy.pretrain.RECIPE): CLIP's "
                                   "contrastive loss on procedurally drawn, captioned images. The same machine "
                                   "gives the same file; `--backbone toy --pretrained FILE` uses it.")
    p.add_argument("--out", required=True, help="weights file to write (safetensors)")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the recipe's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from upt.toy.pretrain import RECIPE, pretrain, save_weights

    recipe = dict(RECIPE, **({"steps": args.steps} if args.steps else {}))
    model, losses = pretrain(recipe)
    path = save_weights(model, args.out)
    print(f"toy CLIP pretrained for {recipe['steps']} steps (loss {losses[0]:.3f} -> {losses[-1]:.3f}) -> {path}")
    return 0
