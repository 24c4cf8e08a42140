"""MaPLe: Multi-modal Prompt Learning (Khattak et al., CVPR 2023).

Text prompts of length M in the first J text layers; layer 0's take the first M word slots of
"a photo of a {classname}." (initialised from their embeddings), deeper layers replace those
positions with their own tokens. Vision prompts at the same layers are coupled,
``V_l = Linear_l(T_l)``: layer 0's are appended after the patches before ``ln_pre``, later ones
replace the last M tokens. Initialisation as the reference: the deeper projections start as
identical copies of one Linear. Deviations from the reference code: widths are read from the backbone
(not hard-coded to ViT-B) and the visual prompts keep the compute dtype (no fp16 rounding in fp32).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from upt.errors import UptError
from upt.methods.base import PromptMethod, l2, normal_param, register
from upt.methods.text_prompt import PromptTemplate


@dataclass
class MaPLeConfig:
    """``n_ctx``: prompt tokens per layer (M); ``depth``: prompted layers (J);
    ``ctx_init``: the phrase whose first M tokens layer-0 text prompts start from."""

    n_ctx: int = 2
    depth: int = 9
    ctx_init: str = "a photo of a"

    def __post_init__(self):
        if self.n_ctx <= 0:
            raise UptError(f"n_ctx must be positive, got {self.n_ctx}.")
        if self.depth <= 0:
            raise UptError(f"depth must be at least 1, got {self.depth}.")


def check_depth(config: MaPLeConfig, backbone) -> None:
    backbone.text.require_prompts("MaPLe")
    backbone.vision.require_prompts("MaPLe")
    layers = min(backbone.text.layers, backbone.vision.layers)
    if config.depth > layers:
        raise UptError(
            f"MaPLe depth {config.depth} exceeds the {layers} layers of backbone '{backbone.name}'; "
            f"set depth to at most {layers}."
        )


@register
class MaPLe(PromptMethod):
    name = "maple"
    description = "MaPLe: deep text prompts coupled to visual prompts by linear maps"
    Config = MaPLeConfig

    def __init__(self, config, backbone, classnames, template="a photo of a {}."):
        super().__init__(config, backbone, classnames, template)
        check_depth(config, backbone)
        d_t, d_v, m = backbone.text.width, backbone.vision.width, config.n_ctx
        self.prompt = PromptTemplate(backbone, m, "end", config.ctx_init)
        self.ctx = nn.Parameter(self.prompt.init_context())  # T_0 (M, d_t)
        # Created in the reference's order: layer 0's projection, the deeper text prompts, then one
        # Linear deep-copied for every deeper layer (identical at initialisation, as in the reference).
        first = nn.Linear(d_t, d_v)
        self.deep_ctx = nn.ParameterList([normal_param(m, d_t) for _ in range(config.depth - 1)])  # T_1..T_{J-1}
        deeper = nn.Linear(d_t, d_v)
        self.proj = nn.ModuleList([first, *(copy.deepcopy(deeper) for _ in range(config.depth - 1))])
        self.set_classnames(classnames)

    def build_class_buffers(self) -> None:
        self.prompt.build(self.classnames)

    def text_prompts(self) -> list[torch.Tensor]:
        return [self.ctx, *self.deep_ctx]

    def visual_prompts(self) -> list[torch.Tensor]:
        return [lin(t) for lin, t in zip(self.proj, self.text_prompts(), strict=True)]

    def encode_image(self, images):
        v = self.backbone.vision
        return l2(v.encode(v.embed(images), self.visual_prompts(), "appended", self.grad_checkpointing))

    def encode_text(self):
        layer_prompts = [None, *self.deep_ctx]
        return l2(self.prompt.encode(self.ctx, layer_prompts=layer_prompts, prompt_start=1,
                                     chunk_size=self.text_chunk_size, grad_checkpointing=self.grad_checkpointing))

    @classmethod
    def count_parameters(cls, config, backbone, n_cls):
        check_depth(config, backbone)
        d_t, d_v, m, j = backbone.text.width, backbone.vision.width, config.n_ctx, config.depth
        return j * m * d_t + j * (d_t * d_v + d_v)
