"""VPT: Visual Prompt Tuning (Jia et al., ECCV 2022), on CLIP's image encoder.

The text side is CLIP's frozen zero-shot classifier from the dataset template, computed once per
class list. ``shallow``: N prompts inserted after the class token, before ``ln_pre``, no positional
embedding. ``deep``: a separate set per layer; layer 0's inserted after ``ln_pre``, and before every
later layer the previous prompt outputs are replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from upt.errors import UptError
from upt.methods.base import PromptMethod, l2, normal_param, register
from upt.methods.text_prompt import zeroshot_classifier


@dataclass
class VPTConfig:
    """``mode``: shallow or deep; ``n_prompts``: prompt tokens per layer; ``depth``: number of
    prompted layers for ``deep`` (None: all)."""

    mode: Literal["shallow", "deep"] = "shallow"
    n_prompts: int = 4
    depth: int | None = None

    def __post_init__(self):
        if self.mode not in ("shallow", "deep"):
            raise UptError(f"Unknown VPT mode '{self.mode}'; choose shallow or deep.")
        if self.n_prompts <= 0:
            raise UptError(f"n_prompts must be positive, got {self.n_prompts}.")
        if self.depth is not None and self.depth <= 0:
            raise UptError(f"depth must be positive, got {self.depth}.")


def prompted_layers(config: VPTConfig, backbone) -> int:
    backbone.vision.require_prompts(f"VPT-{config.mode}")
    if config.mode == "shallow":
        return 1
    depth = config.depth or backbone.vision.layers
    if depth > backbone.vision.layers:
        raise UptError(
            f"VPT depth {depth} exceeds the {backbone.vision.layers} vision layers of backbone '{backbone.name}'."
        )
    return depth


@register
class VPT(PromptMethod):
    name = "vpt"
    description = "VPT: learned visual prompt tokens (shallow or deep), zero-shot text side"
    Config = VPTConfig

    def __init__(self, config, backbone, classnames, template="a photo of a {}."):
        super().__init__(config, backbone, classnames, template)
        layers = prompted_layers(config, backbone)
        shape = (config.n_prompts, backbone.vision.width)
        self.prompts = normal_param(*shape) if config.mode == "shallow" else normal_param(layers, *shape)
        self.set_classnames(classnames)

    def build_class_buffers(self) -> None:
        self.register_buffer(
            "text_features", zeroshot_classifier(self.backbone, self.classnames, [self.template]), persistent=False
        )

    def encode_image(self, images):
        v = self.backbone.vision
        return l2(v.encode(v.embed(images), self.prompts, self.config.mode, self.grad_checkpointing))

    def encode_text(self):
        return self.text_features

    @classmethod
    def count_parameters(cls, config, backbone, n_cls):
        return prompted_layers(config, backbone) * config.n_prompts * backbone.vision.width
