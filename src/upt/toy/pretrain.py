"""Pretrain the ``toy`` CLIP: an open_clip ``CLIP`` of ``tiny``'s size trained with the CLIP
contrastive loss on the toy world's captioned images (:mod:`upt.toy.world`).

The recipe (:data:`RECIPE`, :data:`TOY_CONFIG`) is data: the same recipe on the same machine gives
the same weights. What is stored (:func:`stored_tensors`) is every trained tensor in fp16, except
that the 49,408-row token embedding keeps only the rows the captions use: the other rows are never
trained (no weight decay on embeddings), so they equal the seeded initialisation and are rebuilt
from it when the model is loaded. ``upt pretrain-toy --out FILE`` runs the recipe.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from upt.backbone.configs import BUILTIN_CONFIGS
from upt.toy.world import caption, render, scene_at

log = logging.getLogger(__name__)
TOY_CONFIG: dict = BUILTIN_CONFIGS["toy"]

# (shape, colour) pairs pretraining never shows: tasks built on them are held out.
HELD_OUT: frozenset[tuple[str, str]] = frozenset({
    ("star", "red"), ("heart", "blue"), ("circle", "yellow"), ("triangle", "green"), ("cross", "purple"),
    ("square", "orange"),
})
RECIPE: dict = {"seed": 0, "images": 12_000, "batch_size": 256, "steps": 1_500, "lr": 2e-3, "weight_decay": 0.1,
                "warmup_steps": 50, "init_seed": 0}


def build_model(init_seed: int = 0) -> torch.nn.Module:
    """The toy architecture with its seeded initialisation, as :func:`upt.backbone.load_backbone`
    builds it (the base the stored tensors go on)."""
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        return open_clip.CLIP(**TOY_CONFIG)


def tokenizer():
    import open_clip

    return open_clip.get_tokenizer("ViT-B-16", context_length=TOY_CONFIG["text_cfg"]["context_length"])


def _images(recipe: dict) -> tuple[torch.Tensor, list]:
    """The pretraining images as normalised tensors (N, 3, 32, 32) and their scenes."""
    from upt.backbone.configs import OPENAI_MEAN, OPENAI_STD

    size = TOY_CONFIG["vision_cfg"]["image_size"]
    scenes = [scene_at(recipe["seed"], i, held_out=HELD_OUT) for i in range(recipe["images"])]
    pixels = np.stack([np.asarray(render(s, size, supersample=2), dtype=np.float32) for s in scenes]) / 255
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    mean, std = torch.tensor(OPENAI_MEAN)[:, None, None], torch.tensor(OPENAI_STD)[:, None, None]
    return (x - mean) / std, scenes


def _lr(step: int, recipe: dict) -> float:
    if step < recipe["warmup_steps"]:
        return recipe["lr"] * (step + 1) / recipe["warmup_steps"]
    t = (step - recipe["warmup_steps"]) / max(1, recipe["steps"] - recipe["warmup_steps"])
    return 0.5 * recipe["lr"] * (1 + math.cos(math.pi * t))


def pretrain(recipe: dict = RECIPE, every: int = 50) -> tuple[torch.nn.Module, list[float]]:
    """Run the recipe; returns the trained model (eval mode) and the loss of every step."""
    torch.manual_seed(recipe["seed"])
    model = build_model(recipe["init_seed"])
    tok = tokenizer()
    start = time.monotonic()
    images, scenes = _images(recipe)
    log.info("drew %d toy images in %.0f s", len(scenes), time.monotonic() - start)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe["weight_decay"]},
                             {"params": rest, "weight_decay": 0.0}], lr=recipe["lr"], betas=(0.9, 0.98), eps=1e-6)
    order = torch.Generator().manual_seed(recipe["seed"])
    rng = random.Random(f"upt-toy-captions/{recipe['seed']}")
    losses: list[float] = []
    model.train()
    for step in range(recipe["steps"]):
        idx = torch.randint(len(scenes), (recipe["batch_size"],), generator=order)
        texts = tok([caption(scenes[i], rng) for i in idx.tolist()])
        for group in opt.param_groups:
            group["lr"] = _lr(step, recipe)
        img = F.normalize(model.encode_image(images[idx]), dim=-1)
        txt = F.normalize(model.encode_text(texts), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.t()
        target = torch.arange(len(idx))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if (step + 1) % every == 0 or step + 1 == recipe["steps"]:
            log.info("pretrain-toy step %d/%d  loss %.4f  %.0f s", step + 1, recipe["steps"],
                     sum(losses[-every:]) / len(losses[-every:]), time.monotonic() - start)
    return model.eval(), losses


def used_token_ids() -> list[int]:
    """Token ids any caption of the toy world can contain (with SOS, EOS and padding)."""
    from upt.toy.world import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZES, TEMPLATES, TEXTURES

    words = {*SHAPES, *COLOURS, *SIZES, *POSITIONS, *TEXTURES, *BACKGROUNDS}
    texts = [t.replace("{", " ").replace("}", " ") for t in TEMPLATES] + sorted(words)
    ids = tokenizer()(texts)
    return sorted(set(ids.flatten().tolist()))


def stored_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What the package ships: fp16 tensors; of the token embedding only the used rows."""
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    ids = torch.tensor(used_token_ids())
    state["token_embedding.weight"] = state["token_embedding.weight"][ids].contiguous()
    state["token_embedding.ids"] = ids.to(torch.int32)
    return state


def restore_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A full state dict for ``model`` (freshly built from the seeded init) from :func:`stored_tensors`'
    output: stored tensors in fp32, the token rows never trained taken from ``model`` itself."""
    state = {k: v.float() for k, v in tensors.items() if k != "token_embedding.ids"}
    full = model.token_embedding.weight.detach().clone()
    full[tensors["token_embedding.ids"].long()] = state.pop("token_embedding.weight")
    state["token_embedding.weight"] = full
    return state


def save_weights(model: torch.nn.Module, out: str | Path) -> Path:
    from upt.engine.checkpoint import save_tensors

    out = Path(out)
    save_tensors(out, stored_tensors(model), metadata={"recipe": repr(sorted(RECIPE.items()))})
    return out
