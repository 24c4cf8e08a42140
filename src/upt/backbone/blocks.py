"""The one loop over transformer blocks, with hooks that insert or replace prompt tokens.

open_clip's ``Transformer`` runs its blocks batch-first ``(N, L, D)`` in recent releases and
sequence-first ``(L, N, D)`` in older ones. Everything outside this module works batch-first; the
loop converts at its two ends only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

# Called before block ``i`` with the batch-first hidden states; returns the (possibly changed) states.
LayerHook = Callable[[int, torch.Tensor], torch.Tensor]


def is_batch_first(transformer: nn.Module) -> bool:
    """Whether open_clip's ``Transformer`` expects ``(N, L, D)`` (absent attribute: older releases)."""
    return bool(getattr(transformer, "batch_first", False))


def run_blocks(
    transformer: nn.Module,
    x: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    hook: LayerHook | None = None,
    grad_checkpointing: bool = False,
) -> torch.Tensor:
    """Run every residual block of ``transformer`` over batch-first ``x`` (N, L, D).

    Args:
        transformer: an open_clip ``Transformer`` (its ``resblocks`` are used).
        x: hidden states, batch-first.
        attn_mask: additive mask (L, L), or None.
        hook: called before each block as ``hook(i, x)`` with batch-first states; used to replace
            the prompt tokens of deep prompting.
        grad_checkpointing: recompute each block's activations in backward instead of storing them.
    """
    batch_first = is_batch_first(transformer)
    for i, block in enumerate(transformer.resblocks):
        if hook is not None:
            x = hook(i, x)
        h = x if batch_first else x.transpose(0, 1)
        if grad_checkpointing and torch.is_grad_enabled():
            h = checkpoint(_call_block, block, h, attn_mask, use_reentrant=False)
        else:
            h = _call_block(block, h, attn_mask)
        x = h if batch_first else h.transpose(0, 1)
    return x


def _call_block(block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
    return block(x, attn_mask=attn_mask)


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
