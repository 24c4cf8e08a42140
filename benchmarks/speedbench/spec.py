"""What one measurement is: the options it depends on (:class:`Spec`) and the class names it uses."""

from __future__ import annotations

import dataclasses
import random

STYLES = ("ours", "reference")
PHASES = ("train", "eval")
DEFAULT_METHODS = ("zeroshot", "linear-probe", "coop", "cocoop", "vpt", "maple", "upt")
METHOD_ORDER = (*DEFAULT_METHODS, "kgcoop", "promptsrc", "clip-lora", "tip-adapter", "tip-adapter-f")  # of the tables

# --- class names ------------------------------------------------------------------------------
# Realistic names are 1-3 common words (ImageNet's average about two), so the truncated prompt
# length is what a real dataset gives.
_ADJECTIVES = (
    "red", "black", "small", "giant", "wild", "spotted", "striped", "golden", "common", "northern",
    "southern", "eastern", "western", "mountain", "desert", "river", "sea", "royal", "little", "great",
    "silver", "brown", "green", "white", "blue", "grey", "yellow", "long", "short", "pygmy",
    "horned", "crested", "electric", "wooden", "paper", "stone", "iron", "folding", "portable", "pocket",
)
_NOUNS = (
    "fox", "wolf", "bear", "eagle", "owl", "shark", "whale", "frog", "lizard", "snake", "spider",
    "beetle", "butterfly", "moth", "crab", "lobster", "turtle", "rabbit", "squirrel", "monkey", "horse",
    "goat", "sheep", "pig", "duck", "goose", "swan", "heron", "parrot", "robin", "sparrow", "finch",
    "truck", "car", "bicycle", "boat", "train", "plane", "bridge", "tower", "castle", "church", "lamp",
    "chair", "table", "clock", "guitar", "piano", "drum", "violin", "kettle", "teapot", "mug", "bottle",
    "hammer", "saw", "shovel", "umbrella", "backpack", "wallet", "helmet", "mask", "shoe", "boot",
    "flower", "daisy", "rose", "tulip", "mushroom", "apple", "banana", "orange", "lemon", "pepper",
)
_SECOND = ("tailed", "billed", "necked", "headed", "winged", "eared", "backed", "footed", "haired", "nosed")


def make_classnames(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct, deterministic class names of 1-3 words ("fox", "river otter", ...)."""
    rng = random.Random(seed)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        words = rng.choice((1, 2, 2, 2, 3))
        noun = rng.choice(_NOUNS)
        if words == 1:
            name = noun
        elif words == 2:
            name = f"{rng.choice(_ADJECTIVES)} {noun}"
        else:
            name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_ADJECTIVES)}-{rng.choice(_SECOND)} {noun}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names

# --- one measurement ---------------------------------------------------------------------------
@dataclasses.dataclass
class Spec:
    """Everything one measurement depends on (serialised to a worker subprocess on the CPU)."""

    method: str
    n_cls: int
    phase: str  # train | eval
    style: str  # ours | reference
    backbone: str = "ViT-B-16"
    pretrained: str | None = None
    batch_size: int = 32
    eval_batch_size: int = 100
    steps: int = 5
    warmup: int = 2
    device: str = "cpu"
    precision: str = "auto"  # ours; reference-style is legacy-fp16 on CUDA, fp32 elsewhere
    chunk_size: int | None = None
    checkpointing: bool = False
    template: str = "a photo of a {}."
    mem_cap_mib: float | None = None  # CPU subprocess: abort (and say so) past this RSS
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    seed: int = 0
