"""How a method is configured in each style: ours, or reference-style (mimicking the reference code).

Ours: sequences cut after the last [EOS], class text encoded once per evaluation, ``--precision``
(auto: fp32 on CPU, bf16 on CUDA), and where a step encodes more text sequences than
``--chunk-size``, chunked text encoding (plus gradient checkpointing with ``--checkpointing``).
Reference-style (what the reference code bases do): all 77 tokens, text re-encoded per test batch,
no chunking (CoCoOp: one image's n_cls prompts at a time, the reference's loop over images),
legacy fp16 (whole model and prompts in half) on CUDA, fp32 on CPU.
"""

from __future__ import annotations

from .spec import Spec


def text_tokens(method) -> int | None:
    """The length the method's class prompts are encoded at (None: no learned text prompts)."""
    from upt.methods.text_prompt import PromptTemplate

    for m in method.modules():
        if isinstance(m, PromptTemplate):
            return int(m.ids.shape[1])
    if getattr(method, "text_lora", None) is not None:  # CLIP-LoRA: full ids, cut when encoded
        return method.backbone.text.encoded_length(method.ids, method.truncate)
    return None


def text_sequences(method, spec: Spec, batch: int) -> int:
    """How many text sequences one forward encodes (0: no learned text prompts)."""
    if text_tokens(method) is None:
        return 0
    return spec.n_cls * (batch if method.image_dependent_text else 1)


def precision_name(spec: Spec, device) -> str:
    """Ours: ``spec.precision``; reference-style: legacy fp16 on CUDA, fp32 elsewhere."""
    return spec.precision if spec.style == "ours" else ("legacy-fp16" if device.type == "cuda" else "fp32")


def configure_style(method, spec: Spec, n_seq: int) -> None:
    """Truncation, chunking, checkpointing and shared-prefix encoding of ``spec.style``, given the
    ``n_seq`` text sequences one forward encodes."""
    if spec.style == "ours":
        chunk = spec.chunk_size if spec.chunk_size and n_seq > spec.chunk_size else None
        method.configure_compute(text_chunk_size=chunk, grad_checkpointing=bool(chunk and spec.checkpointing),
                                 truncate_text=True)
    else:
        # The reference CoCoOp loops over the images of a batch: n_cls sequences at a time.
        chunk = spec.n_cls if method.image_dependent_text and n_seq > spec.n_cls else None
        method.configure_compute(text_chunk_size=chunk, grad_checkpointing=False, truncate_text=False,
                                 share_prefix=False)


def caches_text(method, spec: Spec) -> bool:
    """Text once per evaluation (ours) wherever the method has class text features to cache."""
    from upt.methods import PromptMethod

    has_text = getattr(method, "uses_text", type(method).encode_text is not PromptMethod.encode_text)
    return spec.style == "ours" and bool(has_text)


def legacy_fp16_fallback(backbone, method, device):
    """Probe a legacy-fp16 setup with one forward; ``(fp16 autocast precision, reason)`` where it fails.

    Some methods mix dtypes when everything is cast to half (linear-probe: fp32 features against an
    fp16 classifier); they fall back to fp16 autocast, recorded in the results. None: no fallback.
    """
    import torch

    from upt.engine.precision import resolve_precision

    size = backbone.preprocess.size
    try:
        with torch.no_grad():
            method(torch.zeros(1, 3, size, size, device=device))
    except RuntimeError as exc:
        if "dtype" not in str(exc):
            raise
        backbone.model.to(torch.float32)
        method.to(torch.float32)
        return resolve_precision("fp16", device), f"legacy-fp16 failed ({exc}); fp16 autocast instead"
    return None
