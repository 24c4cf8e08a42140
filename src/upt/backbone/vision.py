"""Vision tower seams: patch/class/position embedding, prompt insertion, pooling and projection.

Three ways to add prompt tokens (``N`` prompts of width ``d_v``):

- ``shallow`` (VPT-shallow, UPT): inserted once after the class token, after the positional
  embedding and before ``ln_pre``; prompts get no positional embedding: ``[CLS, P, patches]``.
- ``deep`` (VPT-deep): ``P_0`` inserted after the class token *after* ``ln_pre``; before every later
  layer ``l`` with a prompt, the previous prompt outputs are replaced by ``P_l``.
- ``appended`` (MaPLe): ``V_0`` appended after the patches before ``ln_pre``; before later layers
  ``l`` with a prompt, the last ``M`` tokens are replaced by ``V_l``.

Pooling stays on the class token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from upt.backbone.blocks import AttentionDelta, deep_prompt_hook, insert_tokens, run_blocks
from upt.errors import UptError

PromptMode = Literal["shallow", "deep", "appended"]
PROMPT_MODES = ("shallow", "deep", "appended")


class VisionTower:
    """Seams into an open_clip ``VisionTransformer`` (class-token pooling, no attentional pooler)."""

    def __init__(self, model: nn.Module, model_name: str):
        self.visual = model.visual
        self.model = model
        self.model_name = model_name
        v = self.visual
        self.supports_prompts = (
            all(hasattr(v, a) for a in ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer"))
            and getattr(v, "attn_pool", None) is None
            and getattr(v, "pool_type", "tok") == "tok"
        )
        self.width = v.conv1.out_channels if self.supports_prompts else getattr(v, "width", 0)
        self.layers = len(v.transformer.resblocks) if self.supports_prompts else 0

    def require_prompts(self, method: str) -> None:
        """Raise the clear error when visual prompts are asked of an unsupported image tower."""
        if not self.supports_prompts:
            raise UptError(
                f"{method} needs visual-prompt seams, which backbone '{self.model_name}' "
                f"({type(self.visual).__name__}) does not expose; use a CLIP ViT such as ViT-B-16, "
                "or a method without visual prompts (zeroshot, linear-probe, coop, cocoop)."
            )

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype if self.supports_prompts else torch.float32

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Plain image features (B, embed_dim), unnormalised: works for every open_clip model."""
        if not self.supports_prompts:
            return self.model.encode_image(images)
        return self.encode(self.embed(images))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch + class tokens with positional embedding (B, 1 + P, d_v), before ``ln_pre``."""
        self.require_prompts("Visual prompting")
        v = self.visual
        x = v.conv1(images.to(self.dtype))  # (B, d_v, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B, P, d_v)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)  # (B, 1 + P, d_v)
        return x + v.positional_embedding.to(x.dtype)

    def encode(
        self,
        tokens: torch.Tensor,
        prompts: torch.Tensor | Sequence[torch.Tensor | None] | None = None,
        mode: PromptMode = "shallow",
        grad_checkpointing: bool = False,
        delta: AttentionDelta | None = None,
    ) -> torch.Tensor:
        """Run the tower from :meth:`embed`'s tokens to projected features (B, embed_dim).

        Args:
            tokens: output of :meth:`embed`.
            prompts: ``shallow``: one tensor (N, d_v) or (B, N, d_v). ``deep``/``appended``: a
                sequence whose entry ``l`` is the prompt for layer ``l`` (None: pass through);
                entry 0 must be given.
            mode: ``shallow``, ``deep`` or ``appended`` (see the module docstring).
            grad_checkpointing: recompute block activations in backward.
            delta: additions to every block's attention projections (CLIP-LoRA).
        """
        v = self.visual
        x, hook = tokens, None
        if prompts is not None:
            if mode not in PROMPT_MODES:
                raise UptError(f"Unknown visual prompt mode '{mode}'; choose one of {', '.join(PROMPT_MODES)}.")
            layered = mode != "shallow"
            first = prompts[0] if layered else prompts
            if layered and len(prompts) > self.layers:
                raise UptError(
                    f"{len(prompts)} prompt layers asked, but backbone '{self.model_name}' has "
                    f"{self.layers} vision layers."
                )
            if mode == "shallow":
                x = insert_tokens(x, 1, first)
            elif mode == "appended":
                x = insert_tokens(x, -1, first)
            if layered:
                m = first.shape[-2]
                hook = deep_prompt_hook(prompts, 1 if mode == "deep" else -m)

        x = v.ln_pre(x)
        if prompts is not None and mode == "deep":
            x = insert_tokens(x, 1, prompts[0])  # (B, 1 + N + P, d_v)
        x = run_blocks(v.transformer, x, None, hook, grad_checkpointing, delta)
        return self.pool_project(x)

    def pool_project(self, x: torch.Tensor) -> torch.Tensor:
        """Class-token pooling, final norm and projection: (B, L, d_v) -> (B, embed_dim)."""
        v = self.visual
        pooled = v.ln_post(x[:, 0])  # LayerNorm is per token: identical before or after pooling
        return pooled @ v.proj if v.proj is not None else pooled
