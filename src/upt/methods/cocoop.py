"""CoCoOp: Conditional Prompt Learning for Vision-Language Models (Zhou et al., CVPR 2022).

CoOp's context plus a meta-net ``Linear(d_e → d_e/16) → ReLU → Linear(d_e/16 → d_t)`` mapping each
image's normalised feature to a bias added to every context token. The text encoder therefore
runs ``B × n_cls`` sequences per batch; they are encoded batched (``text_chunk_size`` bounds the
memory), never in a Python loop over images.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from upt.errors import UptError
from upt.methods.base import PromptMethod, full_precision, l2, register
from upt.methods.text_prompt import PromptTemplate, phrase_length


@dataclass
class CoCoOpConfig:
    """``n_ctx``: context length when ``ctx_init`` is empty; ``ctx_init``: starting phrase."""

    n_ctx: int = 4
    ctx_init: str = "a photo of a"

    def __post_init__(self):
        if self.n_ctx <= 0:
            raise UptError(f"n_ctx must be a positive number of context tokens, got {self.n_ctx}.")


@register
class CoCoOp(PromptMethod):
    name = "cocoop"
    description = "CoCoOp: CoOp context + image-conditioned meta-net bias"
    Config = CoCoOpConfig
    frozen_image_encoder = True
    image_dependent_text = True

    def __init__(self, config, backbone, classnames, template="a photo of a {}."):
        super().__init__(config, backbone, classnames, template)
        m = phrase_length(backbone, config.ctx_init) if config.ctx_init.strip() else config.n_ctx
        self.prompt = PromptTemplate(backbone, m, "end", config.ctx_init)
        self.ctx = nn.Parameter(self.prompt.init_context())
        d_e, d_t = backbone.embed_dim, backbone.text.width
        self.meta_net = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(d_e, d_e // 16)),
            ("relu", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(d_e // 16, d_t)),
        ]))
        self.set_classnames(classnames)

    def build_class_buffers(self) -> None:
        self.prompt.build(self.classnames)

    def logits(self, img: torch.Tensor, text_features: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, n_cls) from normalised image features (B, D): each image conditions its own prompts."""
        ctx = self.ctx + self.meta_net(img.to(self.ctx.dtype))[:, None, :]  # (B, M, d_t)
        text = l2(self.prompt.encode_per_image(ctx, chunk_size=self.text_chunk_size,
                                               grad_checkpointing=self.grad_checkpointing))  # (B, n_cls, D)
        with full_precision(img):
            return self.backbone.logit_scale.float() * torch.einsum("bd,bcd->bc", img.float(), text.float())

    def encode_text(self):
        raise UptError("CoCoOp's class text features depend on the image; call the method on images.")

    @classmethod
    def count_parameters(cls, config, backbone, n_cls):
        m = phrase_length(backbone, config.ctx_init) if config.ctx_init.strip() else config.n_ctx
        d_e, d_t = backbone.embed_dim, backbone.text.width
        h = d_e // 16
        return m * d_t + (d_e * h + h) + (h * d_t + d_t)
