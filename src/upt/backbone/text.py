"""Text tower seams: token embedding, and encoding from embeddings with prompt hooks.

The encoder is causal and pools the hidden state at ``[EOS]``, so tokens after the last ``[EOS]``
never influence the result. :meth:`TextTower.encode` therefore cuts every batch of sequences to
(max EOS position + 1) tokens: the same features for several times less compute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from upt.backbone.blocks import (
    AttentionDelta,
    deep_prompt_hook,
    run_blocks,
    run_blocks_shared_prefix,
    supports_shared_prefix,
)
from upt.errors import UptError


class TextTower:
    """Seams into an open_clip ``CLIP`` text encoder (OpenAI-style: ``model.transformer`` etc.).

    For models whose text internals are not supported (``CustomTextCLIP``, SigLIP, CoCa, ...)
    :meth:`encode_ids` still works; any prompt method raises one clear error.
    """

    def __init__(self, model: nn.Module, tokenizer: Callable, model_name: str):
        self.model = model
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.pool_type = getattr(model, "text_pool_type", "argmax")
        self.eos_id = getattr(model, "text_eos_id", None) or getattr(tokenizer, "eot_token_id", None)
        self.supports_prompts = (
            all(hasattr(model, a) for a in ("token_embedding", "positional_embedding", "transformer", "ln_final"))
            and not hasattr(model, "text")
            and self.pool_type in ("argmax", "eos")
        )
        self.causal = getattr(model, "attn_mask", None) is not None
        # Sequences sharing their first tokens can run those once (causal encoders, plain blocks).
        self.shares_prefix = self.supports_prompts and self.causal and supports_shared_prefix(model.transformer)
        if self.supports_prompts:
            self.width = model.token_embedding.embedding_dim
            self.context_length = model.positional_embedding.shape[0]
            self.layers = len(model.transformer.resblocks)
        else:
            text = getattr(model, "text", model)
            self.width = getattr(getattr(text, "transformer", None), "width", None) or getattr(text, "width", 0)
            self.context_length = getattr(text, "context_length", 77)
            self.layers = len(getattr(getattr(text, "transformer", None), "resblocks", []))

    def require_prompts(self, method: str) -> None:
        """Raise the clear error when a prompt method is asked of an unsupported text tower."""
        if not self.supports_prompts:
            raise UptError(
                f"{method} needs text-prompt seams, which backbone '{self.model_name}' "
                f"({type(self.model).__name__}) does not expose; use an OpenAI-style CLIP ViT "
                "such as ViT-B-16, or a method without text prompts (zeroshot, linear-probe, vpt)."
            )

    @property
    def dtype(self) -> torch.dtype:
        return self.model.token_embedding.weight.dtype if self.supports_prompts else torch.float32

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids (N, context_length), on the CPU."""
        return self.tokenizer(list(texts))

    def eos_positions(self, ids: torch.Tensor) -> torch.Tensor:
        """Position of the pooled ``[EOS]`` token of each sequence (N,)."""
        if self.pool_type == "eos":
            return (ids == self.eos_id).int().argmax(dim=-1)
        return ids.argmax(dim=-1)

    def encoded_length(self, ids: torch.Tensor, truncate: bool = True) -> int:
        """The length prompts ``ids`` are encoded at: up to the last pooled ``[EOS]`` with ``truncate``
        (exact for a causal encoder), else all their tokens."""
        return int(self.eos_positions(ids).max()) + 1 if truncate else ids.shape[1]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings (N, L, d_t), without positional embedding."""
        self.require_prompts("Text prompting")
        return self.model.token_embedding(ids).to(self.dtype)

    def encode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Plain text features (N, embed_dim) of token ids: works for every open_clip model."""
        if not self.supports_prompts:
            return self.model.encode_text(ids)
        return self.encode(self.embed(ids), ids)

    def encode_shared_prefix(
        self,
        prefix: torch.Tensor,
        suffix: torch.Tensor,
        ids: torch.Tensor,
        layer_prompts: Sequence[torch.Tensor | None] | None = None,
        prompt_start: int = 1,
        truncate: bool = True,
        chunk_size: int | None = None,
        grad_checkpointing: bool = False,
    ) -> torch.Tensor:
        """Encode sequences that begin with a shared ``prefix``: equal to :meth:`encode` of the
        concatenations, with each prefix run once instead of once per sequence (needs ``shares_prefix``).

        Args:
            prefix: (P, d_t) shared by all N sequences, or (G, P, d_t): G prefixes, each followed
                by every one of the N suffixes (CoCoOp: one prefix per image).
            suffix: (N, L - P, d_t) embeddings of the rest of each sequence.
            ids: (N, L) token ids of the whole sequences (they locate ``[EOS]``, which must lie in
                the suffix).
            layer_prompts: as in :meth:`encode`, shape (M, d_t); they must replace prefix positions.
        Returns:
            Features (N, embed_dim), or (G, N, embed_dim) for a 3-D prefix.
        """
        self.require_prompts("Text prompting")
        grouped = prefix.dim() == 3
        prefix = prefix if grouped else prefix[None]
        g, n = prefix.shape[0], suffix.shape[0]
        args = (ids, truncate, grad_checkpointing, layer_prompts, prompt_start)
        if chunk_size is None or g * n <= chunk_size:
            out = _encode_shared_prefix_impl(self, prefix, suffix, *args)
        elif grouped:  # whole groups per chunk
            step = max(1, chunk_size // n)
            out = torch.cat([_encode_shared_prefix_impl(self, prefix[s : s + step], suffix, *args)
                             for s in range(0, g, step)])
        else:
            out = torch.cat([_encode_shared_prefix_impl(self, prefix, suffix[s : s + chunk_size], ids[s : s + chunk_size],
                                                        *args[1:]) for s in range(0, n, chunk_size)], dim=1)
        return out if grouped else out[0]

    def encode(
        self,
        embeddings: torch.Tensor,
        ids: torch.Tensor,
        layer_prompts: Sequence[torch.Tensor | None] | None = None,
        prompt_start: int = 1,
        truncate: bool = True,
        chunk_size: int | None = None,
        grad_checkpointing: bool = False,
        delta: AttentionDelta | None = None,
    ) -> torch.Tensor:
        """Encode token embeddings (N, L, d_t) into text features (N, embed_dim), unnormalised.

        Args:
            embeddings: token embeddings, prompts already in place.
            ids: the token ids the embeddings stand for (N, L): they locate ``[EOS]``.
            layer_prompts: entry ``i`` (i >= 1) replaces the tokens ``prompt_start:prompt_start+M``
                before block ``i`` (deep text prompts, MaPLe); shape (M, d_t) or (N, M, d_t).
                Entry 0 is ignored: layer-0 prompts are part of ``embeddings``.
            prompt_start: first position taken by the deep prompts.
            truncate: cut the sequences to (max EOS position + 1): exact for causal encoders.
            chunk_size: encode at most this many sequences at a time (bounded memory).
            grad_checkpointing: recompute block activations in backward (bounded memory).
            delta: additions to every block's attention projections (CLIP-LoRA).
        """
        self.require_prompts("Text prompting")
        n = embeddings.shape[0]
        if chunk_size is not None and 0 < chunk_size < n:
            parts = []
            for s in range(0, n, chunk_size):
                sl = slice(s, s + chunk_size)
                chunk_prompts = None
                if layer_prompts is not None:
                    chunk_prompts = [p[sl] if p is not None and p.dim() == 3 else p for p in layer_prompts]
                parts.append(
                    self.encode(embeddings[sl], ids[sl], chunk_prompts, prompt_start, truncate, None,
                                grad_checkpointing, delta)
                )
            return torch.cat(parts)

        eos = self.eos_positions(ids).to(embeddings.device)
        length = embeddings.shape[1]
        if truncate and self.causal:
            length = int(eos.max()) + 1
        m = self.model
        x = embeddings[:, :length].to(self.dtype) + m.positional_embedding[:length].to(self.dtype)
        mask = m.attn_mask[:length, :length] if self.causal else None

        x = run_blocks(m.transformer, x, mask, deep_prompt_hook(layer_prompts, prompt_start), grad_checkpointing,
                       delta)
        pooled = x[torch.arange(x.shape[0], device=x.device), eos]  # (N, d_t)
        pooled = m.ln_final(pooled)  # LayerNorm is per token: pooling first is identical and cheaper
        return _project(pooled, m.text_projection)


def _encode_shared_prefix_impl(tower: TextTower, prefix, suffix, ids, truncate, grad_checkpointing,
                               layer_prompts, prompt_start):
    """(G, P, d) prefixes x (N, S, d) suffixes -> features (G, N, embed_dim)."""
    m, dtype = tower.model, tower.dtype
    g, p = prefix.shape[:2]
    n = suffix.shape[0]
    eos = tower.eos_positions(ids).to(suffix.device)
    length = int(eos.max()) + 1 if truncate else ids.shape[1]
    xp = prefix.to(dtype) + m.positional_embedding[:p].to(dtype)  # (G, P, d)
    xs = suffix[:, : length - p].to(dtype) + m.positional_embedding[p:length].to(dtype)  # (N, S, d)
    xs = xs.unsqueeze(0).expand(g, *xs.shape).flatten(0, 1)  # (G * N, S, d)
    xs = run_blocks_shared_prefix(m.transformer, xp, xs, grad_checkpointing,
                                  deep_prompt_hook(layer_prompts, prompt_start))
    pooled = m.ln_final(xs[torch.arange(g * n, device=xs.device), (eos - p).repeat(g)])
    return _project(pooled, m.text_projection).reshape(g, n, -1)


def _project(x: torch.Tensor, projection: nn.Module | torch.Tensor | None) -> torch.Tensor:
    if projection is None:
        return x
    if isinstance(projection, nn.Linear):
        return projection(x)
    return x @ projection
