"""The one loop over transformer blocks, with hooks that insert or replace prompt tokens.

open_clip's ``Transformer`` runs its blocks batch-first ``(N, L, D)`` in recent releases and
sequence-first ``(L, N, D)`` in older ones. Everything outside this module works batch-first; the
loop converts at its two ends only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from upt.errors import UptError

# Called before block ``i`` with the batch-first hidden states; returns the (possibly changed) states.
LayerHook = Callable[[int, torch.Tensor], torch.Tensor]


class AttentionDelta(Protocol):
    """Additions to the attention projections of each block (CLIP-LoRA's low-rank updates)."""

    def qkv(self, layer: int, h: torch.Tensor) -> torch.Tensor | None:
        """What block ``layer`` adds to its fused q|k|v projection of ``h = ln_1(x)`` (N, L, D):
        (N, L, 3D), or None."""

    def out(self, layer: int, a: torch.Tensor) -> torch.Tensor | None:
        """What block ``layer`` adds to its output projection of the attention result ``a`` (N, L, D), or None."""


def is_batch_first(transformer: nn.Module) -> bool:
    """Whether open_clip's ``Transformer`` expects ``(N, L, D)`` (absent attribute: older releases)."""
    return bool(getattr(transformer, "batch_first", False))


def run_blocks(
    transformer: nn.Module,
    x: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    hook: LayerHook | None = None,
    grad_checkpointing: bool = False,
    delta: AttentionDelta | None = None,
) -> torch.Tensor:
    """Run every residual block of ``transformer`` over batch-first ``x`` (N, L, D).

    Args:
        transformer: an open_clip ``Transformer`` (its ``resblocks`` are used).
        x: hidden states, batch-first.
        attn_mask: additive mask (L, L), or None.
        hook: called before each block as ``hook(i, x)`` with batch-first states; used to replace
            the prompt tokens of deep prompting.
        grad_checkpointing: recompute each block's activations in backward instead of storing them.
        delta: additions to every block's attention projections; needs plain open_clip blocks
            (:func:`supports_shared_prefix`).
    """
    if delta is not None and not supports_shared_prefix(transformer):
        raise UptError("Attention-projection updates (LoRA) need open_clip's plain residual attention blocks, which "
                       "this backbone does not use; choose an OpenAI-style CLIP ViT such as ViT-B-16.")
    batch_first = is_batch_first(transformer)
    for i, block in enumerate(transformer.resblocks):
        if hook is not None:
            x = hook(i, x)
        if delta is not None:  # recomputed here from the block's own weights, always batch-first
            x = (checkpoint(_delta_block, block, x, attn_mask, i, delta, use_reentrant=False)
                 if grad_checkpointing and torch.is_grad_enabled() else _delta_block(block, x, attn_mask, i, delta))
            continue
        h = x if batch_first else x.transpose(0, 1)
        if grad_checkpointing and torch.is_grad_enabled():
            h = checkpoint(_call_block, block, h, attn_mask, use_reentrant=False)
        else:
            h = _call_block(block, h, attn_mask)
        x = h if batch_first else h.transpose(0, 1)
    return x


def _call_block(block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
    return block(x, attn_mask=attn_mask)


def _split_heads(x: torch.Tensor, heads: int) -> list[torch.Tensor]:
    """(B, L, 3D) fused projections -> q, k, v, each (B, heads, L, D/heads)."""
    b, length, _ = x.shape
    return [t.reshape(b, length, heads, -1).transpose(1, 2) for t in x.chunk(3, dim=-1)]


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, L, D/heads) -> (B, L, D)."""
    return x.transpose(1, 2).flatten(2)


def _delta_block(block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None, layer: int,
                 delta: AttentionDelta) -> torch.Tensor:
    """open_clip's ``ResidualAttentionBlock`` on batch-first ``x`` with ``delta`` added to its projections."""
    attn = block.attn
    h = block.ln_1(x)
    qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)  # (N, L, 3D)
    extra = delta.qkv(layer, h)
    if extra is not None:
        qkv = qkv + extra.to(qkv.dtype)
    q, k, v = _split_heads(qkv, attn.num_heads)
    mask = attn_mask.to(q.dtype) if attn_mask is not None else None
    a = _merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))  # (N, L, D)
    out = attn.out_proj(a)
    extra = delta.out(layer, a)
    if extra is not None:
        out = out + extra.to(out.dtype)
    x = x + block.ls_1(out)
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def deep_prompt_hook(layer_prompts, prompt_start: int):
    """The block hook that puts ``layer_prompts[i]`` at ``prompt_start`` before block i >= 1 (None: no hook)."""
    if layer_prompts is None:
        return None

    def hook(i: int, h: torch.Tensor) -> torch.Tensor:
        p = layer_prompts[i] if 0 < i < len(layer_prompts) else None
        return h if p is None else replace_tokens(h, prompt_start, p)

    return hook


def replace_tokens(x: torch.Tensor, start: int, prompts: torch.Tensor) -> torch.Tensor:
    """Replace ``x[:, start:start+M]`` with ``prompts`` (M, D) or (N, M, D); ``start`` may be negative."""
    n, length, _ = x.shape
    m = prompts.shape[-2]
    start = start % length
    if prompts.dim() == 2:
        prompts = prompts.unsqueeze(0).expand(n, -1, -1)
    prompts = prompts.to(x.dtype)
    return torch.cat([x[:, :start], prompts, x[:, start + m :]], dim=1)


def insert_tokens(x: torch.Tensor, at: int, prompts: torch.Tensor) -> torch.Tensor:
    """Insert ``prompts`` (M, D) or (N, M, D) before position ``at`` of ``x`` (N, L, D); -1 appends."""
    n, length, _ = x.shape
    at = length if at == -1 else at
    if prompts.dim() == 2:
        prompts = prompts.unsqueeze(0).expand(n, -1, -1)
    prompts = prompts.to(x.dtype)
    return torch.cat([x[:, :at], prompts, x[:, at:]], dim=1)  # (N, L + M, D)


def supports_shared_prefix(transformer: nn.Module) -> bool:
    """Whether every block is open_clip's plain ``ResidualAttentionBlock`` (pre-norm self-attention + MLP)."""
    for block in transformer.resblocks:
        attn = getattr(block, "attn", None)
        if not (isinstance(attn, nn.MultiheadAttention) and attn._qkv_same_embed_dim and attn.in_proj_bias is not None
                and all(hasattr(block, a) for a in ("ln_1", "ln_2", "mlp", "ls_1", "ls_2"))
                and not hasattr(block, "ln_1_kv")):
            return False
    return True


def run_blocks_shared_prefix(
    transformer: nn.Module,
    prefix: torch.Tensor,
    suffix: torch.Tensor,
    grad_checkpointing: bool = False,
    prefix_hook: LayerHook | None = None,
) -> torch.Tensor:
    """Causal blocks over sequences that start with a shared ``prefix``.

    In a causal encoder the prefix's hidden states do not depend on what follows, so they are
    computed once per group and only the ``suffix`` tokens run per sequence, attending to their
    group's prefix keys and values (broadcast) and causally to their own suffix. Exact.

    Args:
        prefix: (G, P, D) embeddings of the shared first tokens of G groups, positions included.
        suffix: (G * N, S, D) embeddings of the rest of each sequence, group-major, positions included.
        prefix_hook: called before each block as ``hook(i, prefix)``; deep prompts that replace
            prefix positions act on the prefix stream alone.
    Returns:
        The suffix's hidden states after the last block (G * N, S, D).
    """
    p, s = prefix.shape[1], suffix.shape[1]
    mask = torch.ones(s, p + s, dtype=torch.bool, device=suffix.device).tril(diagonal=p)  # True: may attend
    for i, block in enumerate(transformer.resblocks):
        if prefix_hook is not None:
            prefix = prefix_hook(i, prefix)
        if grad_checkpointing and torch.is_grad_enabled():
            prefix, suffix = checkpoint(_prefix_block, block, prefix, suffix, mask, use_reentrant=False)
        else:
            prefix, suffix = _prefix_block(block, prefix, suffix, mask)
    return suffix


def _prefix_block(block: nn.Module, xp: torch.Tensor, xs: torch.Tensor, mask: torch.Tensor):
    attn = block.attn
    g, heads = xp.shape[0], attn.num_heads
    n = xs.shape[0] // g

    def per_sequence(t: torch.Tensor) -> torch.Tensor:  # (G, h, P, dh) -> (G * N, h, P, dh)
        return t.unsqueeze(1).expand(g, n, *t.shape[1:]).flatten(0, 1)

    qp, kp, vp = _split_heads(F.linear(block.ln_1(xp), attn.in_proj_weight, attn.in_proj_bias), heads)
    qs, ks, vs = _split_heads(F.linear(block.ln_1(xs), attn.in_proj_weight, attn.in_proj_bias), heads)
    op = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True)  # (G, h, P, dh)
    keys = torch.cat([per_sequence(kp), ks], dim=2)  # (G * N, h, P + S, dh)
    values = torch.cat([per_sequence(vp), vs], dim=2)
    os_ = F.scaled_dot_product_attention(qs, keys, values, attn_mask=mask)  # (G * N, h, S, dh)
    xp = xp + block.ls_1(attn.out_proj(_merge_heads(op)))
    xs = xs + block.ls_1(attn.out_proj(_merge_heads(os_)))
    xp = xp + block.ls_2(block.mlp(block.ln_2(xp)))
    xs = xs + block.ls_2(block.mlp(block.ln_2(xs)))
    return xp, xs
