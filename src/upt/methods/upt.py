"""UPT: Unified Vision and Language Prompt Learning (Zang et al., arXiv 2210.07225).

One shared prompt ``U ∈ R^{(n_t+n_v)×d_t}`` goes through one small transformer-encoder layer
``f_θ`` (1 head, post-norm around attention, pre-norm FFN of width ``ffn_mult·d_t``); the first
n_t output rows are the text context (used like CoOp's), the last n_v rows are projected
``Linear(d_t → d_v)`` into shallow visual prompts (inserted like VPT-shallow).

Two readings of ``f_θ``'s attention (``token_mixing``):

- ``paper`` (default): U is one sequence, so text and visual prompt tokens attend to each other.
- ``reference``: the authors' released code feeds U to a sequence-first attention as shape
  (1, n, d), i.e. sequence length 1: each token attends only to itself. This reading reproduces
  that code's outputs exactly; in training it also runs ``f_θ`` once per modality (image side
  first), as the release does, so text and visual prompts see independent dropout masks.
  ``paper`` runs ``f_θ`` once per step: one joint draw, the point of a unified prompt.

Deliberate deviations: ``visual_prompt="deep"`` is an ablation not in the paper (n_v prompts per
prompted layer, all produced by ``f_θ``, replaced layer by layer as in VPT-deep); class text
features are computed once per evaluation instead of per test batch (same numbers, faster).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from upt.errors import UptError
from upt.methods.base import PromptMethod, l2, normal_param, register
from upt.methods.text_prompt import PromptTemplate

TOKEN_MIXING = ("paper", "reference")


@dataclass
class UPTConfig:
    """``n_t``/``n_v``: text/visual prompt tokens; ``token_mixing``: paper or reference (see
    module docstring); ``visual_prompt``: shallow or deep; ``depth``: prompted vision layers for
    deep (None: all); ``ffn_mult``: FFN hidden width as a multiple of d_t; ``dropout``: in f_θ."""

    n_t: int = 4
    n_v: int = 4
    token_mixing: Literal["paper", "reference"] = "paper"
    visual_prompt: Literal["shallow", "deep"] = "shallow"
    depth: int | None = None
    ffn_mult: float = 1.0
    dropout: float = 0.1

    def __post_init__(self):
        if self.n_t <= 0 or self.n_v <= 0:
            raise UptError(f"n_t and n_v must be positive, got n_t={self.n_t}, n_v={self.n_v}.")
        if self.token_mixing not in TOKEN_MIXING:
            raise UptError(f"Unknown token_mixing '{self.token_mixing}'; choose paper or reference.")
        if self.visual_prompt not in ("shallow", "deep"):
            raise UptError(f"Unknown visual_prompt '{self.visual_prompt}'; choose shallow or deep.")
        if self.ffn_mult <= 0:
            raise UptError(f"ffn_mult must be positive, got {self.ffn_mult}.")
        if not 0 <= self.dropout < 1:
            raise UptError(f"dropout must be in [0, 1), got {self.dropout}.")


def visual_layers(config: UPTConfig, backbone) -> int:
    backbone.text.require_prompts("UPT")
    backbone.vision.require_prompts("UPT")
    if config.visual_prompt == "shallow":
        return 1
    depth = config.depth or backbone.vision.layers
    if depth > backbone.vision.layers:
        raise UptError(f"UPT depth {depth} exceeds the {backbone.vision.layers} vision layers of '{backbone.name}'.")
    return depth


class UnifiedPromptNet(nn.Module):
    """``f_θ``: U -> (text context (n_t, d_t), visual prompts (layers, n_v, d_v))."""

    def __init__(self, config: UPTConfig, d_t: int, d_v: int, layers: int):
        super().__init__()
        self.n_t, self.n_v, self.layers = config.n_t, config.n_v, layers
        self.mixing = config.token_mixing
        hidden = int(round(config.ffn_mult * d_t))
        self.prompt = normal_param(config.n_t + config.n_v * layers, d_t)  # U
        self.self_attn = nn.MultiheadAttention(d_t, 1, dropout=config.dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d_t)
        self.norm2 = nn.LayerNorm(d_t)
        self.linear1 = nn.Linear(d_t, hidden)
        self.linear2 = nn.Linear(hidden, d_t)
        self.dropout = nn.Dropout(config.dropout)
        self.proj = nn.Linear(d_t, d_v)

    def mix(self) -> torch.Tensor:
        """The transformer layer on U: (n, d_t) -> (n, d_t)."""
        # paper: one sequence of n tokens; reference: n sequences of one token each.
        x = self.prompt[None] if self.mixing == "paper" else self.prompt[:, None]
        a = self.self_attn(x, x, x, need_weights=False)[0]
        h = self.norm1(x + self.dropout(a))
        f = self.linear2(self.dropout(torch.relu(self.linear1(self.norm2(h)))))
        out = h + self.dropout(f)
        return out.reshape(self.prompt.shape)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.mix()
        text = u[: self.n_t]  # (n_t, d_t)
        visual = self.proj(u[self.n_t :]).reshape(self.layers, self.n_v, -1)  # (layers, n_v, d_v)
        return text, visual


@register
class UPT(PromptMethod):
    name = "upt"
    description = "UPT: one shared prompt -> tiny transformer -> text context + visual prompts"
    Config = UPTConfig

    def __init__(self, config, backbone, classnames, template="a photo of a {}."):
        super().__init__(config, backbone, classnames, template)
        layers = visual_layers(config, backbone)
        self.net = UnifiedPromptNet(config, backbone.text.width, backbone.vision.width, layers)
        self.prompt = PromptTemplate(backbone, config.n_t, "end")
        self.set_classnames(classnames)

    def build_class_buffers(self) -> None:
        self.prompt.build(self.classnames)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.training and self.config.token_mixing == "reference":
            # The release runs the prompt network once per modality, image side first: in training
            # the two get independent dropout masks (in eval mode both calls give the same output).
            visual = self.net()[1]
            text_ctx = self.net()[0]
        else:
            text_ctx, visual = self.net()  # one pass: both modalities see the same dropout draw
        img = self.encode_image(images, visual)
        txt = self._text_cache if self._text_cache is not None else self._encode_text(text_ctx)
        return self.logits(img, txt)

    def encode_image(self, images, visual=None):
        if visual is None:
            visual = self.net()[1]
        v = self.backbone.vision
        if self.config.visual_prompt == "shallow":
            return l2(v.encode(v.embed(images), visual[0], "shallow", self.grad_checkpointing))
        return l2(v.encode(v.embed(images), visual, "deep", self.grad_checkpointing))

    def encode_text(self):
        return self._encode_text(self.net()[0])

    def _encode_text(self, ctx: torch.Tensor) -> torch.Tensor:
        return l2(self.prompt.encode(ctx, chunk_size=self.text_chunk_size, grad_checkpointing=self.grad_checkpointing))

    @classmethod
    def count_parameters(cls, config, backbone, n_cls):
        d, d_v = backbone.text.width, backbone.vision.width
        h = int(round(config.ffn_mult * d))
        rows = config.n_t + config.n_v * visual_layers(config, backbone)
        attention = 4 * d * d + 4 * d
        return rows * d + attention + 4 * d + (d * h + h + h * d + d) + (d * d_v + d_v)
