"""Shared text side: "[SOS] ctx classname . [EOS]" prompt assembly and the zero-shot classifier.

:class:`PromptTemplate` tokenises ``"X X … X classname."`` (or a phrase such as ``"a photo of a"``
in place of the X's) once per class list, keeps the frozen token embeddings around the context
slots as buffers, and splices learned context vectors in. Sequences are stored already cut to
(max EOS position + 1) tokens, which the causal encoder makes exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from upt.backbone import Backbone
from upt.errors import UptError
from upt.text import clean_classname

ClassPosition = Literal["end", "middle", "front"]
CLASS_POSITIONS = ("end", "middle", "front")

# The seven templates CLIP's authors selected for ImageNet, a common small ensemble.
ENSEMBLE_TEMPLATES = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)


def phrase_length(backbone: Backbone, phrase: str) -> int:
    """Number of tokens a phrase takes (without SOS/EOS)."""
    ids = backbone.text.tokenize([phrase])[0]
    return int(backbone.text.eos_positions(ids[None])[0]) - 1


class PromptTemplate(nn.Module):
    """Frozen token embeddings of ``[SOS] <n_ctx slots> [phrase rest] classname . [EOS]`` per class.

    Args:
        backbone: the frozen CLIP.
        n_ctx: number of learned context slots.
        position: where the class name goes relative to the context: ``end`` (after it),
            ``middle`` (between its two halves), ``front`` (before it).
        phrase: optional words the slots start from (``"a photo of a"``); slots take its first
            ``n_ctx`` tokens and its remaining tokens stay fixed text (only with ``end``).
    """

    def __init__(self, backbone: Backbone, n_ctx: int, position: ClassPosition = "end", phrase: str = ""):
        super().__init__()
        if n_ctx <= 0:
            raise UptError(f"The number of context tokens must be positive, got {n_ctx}.")
        if position not in CLASS_POSITIONS:
            raise UptError(f"Unknown class token position '{position}'; choose end, middle or front.")
        backbone.text.require_prompts("Text prompt tuning")
        self.backbone = [backbone]  # list: keep the frozen CLIP out of this module's state
        self.n_ctx = n_ctx
        self.position = position
        self.phrase = phrase.strip()
        if self.phrase:
            n_phrase = phrase_length(backbone, self.phrase)
            if n_ctx > n_phrase:
                raise UptError(f"n_ctx={n_ctx} exceeds the {n_phrase} tokens of the init phrase '{self.phrase}'.")
            if position != "end" and n_ctx != n_phrase:
                raise UptError("With class position middle/front the init phrase must be fully learned.")
        self.prefix_text = self.phrase or " ".join(["X"] * n_ctx)
        self.truncate = True  # False keeps all context_length tokens (reference-style, for benchmarks)
        self.share_prefix = True  # run "[SOS] ctx" once for all classes when the context is shared

    def init_context(self) -> torch.Tensor:
        """Initial context (n_ctx, d_t): the phrase's embeddings, or N(0, 0.02²)."""
        text = self.backbone[0].text
        if not self.phrase:
            return torch.randn(self.n_ctx, text.width) * 0.02
        ids = text.tokenize([self.phrase]).to(self.backbone[0].device)
        with torch.no_grad():
            return text.embed(ids)[0, 1 : 1 + self.n_ctx].float().cpu().clone()

    def build(self, classnames: Sequence[str]) -> None:
        """Tokenise every class prompt and store the frozen pieces (buffers, not saved)."""
        text = self.backbone[0].text
        names = [clean_classname(c) for c in classnames]
        ids = text.tokenize([f"{self.prefix_text} {n}." for n in names])
        ids = ids[:, : text.encoded_length(ids, self.truncate)].to(self.backbone[0].device)
        with torch.no_grad():
            emb = text.embed(ids)  # (n_cls, L, d_t)
        name_lens = [phrase_length(self.backbone[0], n) for n in names]
        self.register_buffer("ids", ids, persistent=False)
        self.register_buffer("embeddings", emb, persistent=False)
        self.name_lens = name_lens

    def assemble(self, ctx: torch.Tensor) -> torch.Tensor:
        """Splice context into every class prompt.

        Args:
            ctx: (n_ctx, d_t) shared, (n_cls, n_ctx, d_t) class-specific, or
                (B, n_cls, n_ctx, d_t) per image (CoCoOp).
        Returns:
            Token embeddings (n_cls, L, d_t) or (B, n_cls, L, d_t).
        """
        emb = self.embeddings
        n_cls, _, d = emb.shape
        m = self.n_ctx
        ctx = ctx.to(emb.dtype)
        if ctx.dim() == 2:
            ctx = ctx.expand(n_cls, m, d)
        lead = ctx.shape[:-3]
        emb = emb.expand(*lead, *emb.shape)
        sos, rest = emb[..., :1, :], emb[..., 1 + m :, :]
        if self.position == "end":
            return torch.cat([sos, ctx, rest], dim=-2)  # (..., n_cls, L, d)
        # middle/front: the class name tokens move, so each class is spliced on its own.
        half = m // 2
        rows = []
        for i, k in enumerate(self.name_lens):
            c, name, tail = ctx[..., i, :, :], rest[..., i, :k, :], rest[..., i, k:, :]
            parts = [sos[..., i, :, :], c[..., :half, :], name, c[..., half:, :], tail] \
                if self.position == "middle" else [sos[..., i, :, :], name, c, tail]
            rows.append(torch.cat(parts, dim=-2))
        return torch.stack(rows, dim=-3)

    def can_share_prefix(self, ctx: torch.Tensor, layer_prompts=None, prompt_start: int = 1) -> bool:
        """Whether "[SOS] ctx" is one prefix for all classes (shared context, class name at the end)
        and any deep prompts replace positions inside it."""
        deep = [p for p in (layer_prompts or [])[1:] if p is not None]
        inside = all(p.dim() == 2 and prompt_start + p.shape[0] <= 1 + self.n_ctx for p in deep)
        return (ctx.dim() == 2 and self.position == "end" and self.share_prefix and inside
                and self.backbone[0].text.shares_prefix)

    def encode_per_image(self, ctx: torch.Tensor, **kwargs) -> torch.Tensor:
        """Text features (B, n_cls, D) of per-image contexts (B, n_ctx, d_t) shared by all classes (CoCoOp)."""
        text = self.backbone[0].text
        if self.position == "end" and self.share_prefix and text.shares_prefix:
            sos = self.embeddings[0, :1].expand(ctx.shape[0], 1, -1)
            prefix = torch.cat([sos, ctx.to(self.embeddings.dtype)], dim=1)  # (B, 1 + M, d)
            return text.encode_shared_prefix(prefix, self.embeddings[:, 1 + self.n_ctx :], self.ids,
                                             truncate=self.truncate, **kwargs)
        return self.encode(ctx[:, None].expand(-1, len(self.name_lens), -1, -1), **kwargs)

    def encode(self, ctx: torch.Tensor, layer_prompts=None, prompt_start: int = 1, **kwargs) -> torch.Tensor:
        """Assemble and encode: text features (n_cls, D) or (B, n_cls, D), unnormalised.

        With context shared by all classes and the class name at the end, every prompt starts with
        the same "[SOS] ctx" tokens: those run once (exact, since the encoder is causal).
        """
        text = self.backbone[0].text
        if self.can_share_prefix(ctx, layer_prompts, prompt_start):
            prefix = torch.cat([self.embeddings[0, :1], ctx.to(self.embeddings.dtype)])  # (1 + M, d)
            return text.encode_shared_prefix(prefix, self.embeddings[:, 1 + self.n_ctx :], self.ids,
                                             layer_prompts, prompt_start, truncate=self.truncate, **kwargs)
        if layer_prompts is not None:
            kwargs.update(layer_prompts=layer_prompts, prompt_start=prompt_start)
        emb = self.assemble(ctx)
        lead = emb.shape[:-3]
        flat = emb.reshape(-1, *emb.shape[-2:])
        ids = self.ids.expand(*lead, *self.ids.shape).reshape(-1, self.ids.shape[-1])
        feats = self.backbone[0].text.encode(flat, ids, truncate=self.truncate, **kwargs)
        return feats.reshape(*lead, self.ids.shape[0], -1)


@torch.no_grad()
def zeroshot_classifier(
    backbone: Backbone, classnames: Sequence[str], templates: Sequence[str], chunk_size: int = 256
) -> torch.Tensor:
    """Normalised text classifier (n_cls, D): mean of normalised features over ``templates``."""
    from upt.methods.base import l2

    text = backbone.text
    total = None
    for template in templates:
        prompts = [template.format(clean_classname(c)) for c in classnames]
        feats = []
        for s in range(0, len(prompts), chunk_size):
            ids = text.tokenize(prompts[s : s + chunk_size]).to(backbone.device)
            feats.append(l2(text.encode_ids(ids)))
        f = torch.cat(feats)
        total = f if total is None else total + f
    return l2(total)
