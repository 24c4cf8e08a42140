"""Every method, registered by name: zeroshot, linear-probe, coop, cocoop, vpt, maple, upt, kgcoop,
promptsrc, clip-lora, tip-adapter, tip-adapter-f."""

from upt.methods import (  # noqa: F401  (fill the registry)
    clip_lora,
    cocoop,
    coop,
    kgcoop,
    linear_probe,
    maple,
    promptsrc,
    tip_adapter,
    upt,
    vpt,
    zeroshot,
)
from upt.methods.base import REGISTRY, PromptMethod
from upt.methods.registry import build_method, describe_methods, get_method_class, make_config

__all__ = ["REGISTRY", "PromptMethod", "build_method", "describe_methods", "get_method_class", "make_config"]
