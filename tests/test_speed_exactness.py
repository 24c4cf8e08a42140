"""The speed settings change no number: truncation, chunking, checkpointing and cached text.

Exactness only, never timings (benchmarks/speed.py measures those). Everything in fp32 on the CPU.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from upt.methods import build_method

N_CLS = 7
NAMES = ["fox", "red fox", "great horned owl", "golden retriever dog", "teapot", "sea lion", "electric guitar"]
ATOL = 1e-5

# MaPLe's default depth (9) exceeds the tiny backbone's 2 layers; dropout off so that two passes of
# UPT's prompt net are the same function.
CONFIGS = {"maple": {"depth": 2}, "upt": {"dropout": 0.0}, "cocoop": {}, "coop": {}}


def _build(name, backbone, config=None, seed=0):
    torch.manual_seed(seed)
    cfg = {**CONFIGS.get(name, {}), **(config or {})}
    return build_method(name, backbone, NAMES, config=cfg).eval()


def _images(backbone, n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    size = backbone.preprocess.size
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, N_CLS, (n,), generator=g)


def _loss_and_grads(method, images, labels):
    """CE loss of a forward pass and the gradient of every trainable tensor, by name."""
    method.zero_grad(set_to_none=True)
    loss = F.cross_entropy(method(images), labels)
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in method.named_parameters() if p.requires_grad}


def _assert_grads_close(a, b):
    assert a.keys() == b.keys() and a
    for name in a:
        scale = a[name].abs().max().item()
        assert scale > 0, f"{name}: zero gradient, the comparison would prove nothing"
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=ATOL * scale, msg=lambda m, n=name: f"{n}: {m}")


# --- truncation ----------------------------------------------------------------------------------
def test_clip_lora_truncated_text_equals_full_77_tokens_with_gradients(tiny):
    torch.manual_seed(0)
    m = build_method("clip-lora", tiny, NAMES, config={"dropout": 0.0})
    for p in m.parameters():  # B starts at zero: give the updates a value, so they take part
        torch.nn.init.normal_(p, std=0.1)

    def text_and_grads():
        m.zero_grad(set_to_none=True)
        text = m.encode_text()
        (text * torch.arange(text.shape[1], dtype=text.dtype)).sum().backward()
        return text.detach(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    lengths = []  # the sequence length the text tower's first block sees
    hook = tiny.model.transformer.resblocks[0].ln_1.register_forward_hook(lambda mod, a, out: lengths.append(out.shape[1]))
    try:
        short, grads_short = text_and_grads()
        m.configure_compute(truncate_text=False)
        full, grads_full = text_and_grads()
    finally:
        hook.remove()
    assert lengths[0] < 77 and lengths[-1] == 77
    torch.testing.assert_close(short, full, rtol=0, atol=ATOL)
    assert any(k.startswith("text_lora") for k in grads_full)
    _assert_grads_close(grads_full, grads_short)
@pytest.mark.parametrize("name", ["coop", "upt", "maple"])
def test_truncated_text_equals_full_77_tokens(tiny, name):
    m = _build(name, tiny)
    with torch.no_grad():
        short = m.encode_text()
        short_len = m.prompt.ids.shape[1]
        m.configure_compute(truncate_text=False)
        full = m.encode_text()
        assert m.prompt.ids.shape[1] == tiny.text.context_length == 77
    assert short_len < 77  # the truncation actually happened
    torch.testing.assert_close(short, full, rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", ["coop", "upt"])
def test_truncation_gives_the_same_gradients(tiny, name):
    images, labels = _images(tiny)
    m = _build(name, tiny)
    loss_t, grads_t = _loss_and_grads(m, images, labels)
    m.configure_compute(truncate_text=False)
    loss_f, grads_f = _loss_and_grads(m, images, labels)
    torch.testing.assert_close(loss_t, loss_f, rtol=0, atol=ATOL)
    _assert_grads_close(grads_f, grads_t)


def test_truncation_on_vit_b16_text_tower(vit_b16):
    """The full-size text tower (12 layers, 8 heads): truncation stays exact."""
    names = ["fox", "great horned owl", "a rather long class name with many words"]
    m = build_method("coop", vit_b16, names).eval()
    with torch.no_grad():
        short = m.encode_text()
        m.configure_compute(truncate_text=False)
        full = m.encode_text()
    torch.testing.assert_close(short, full, rtol=0, atol=ATOL)


# --- chunking and checkpointing ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["coop", "upt", "maple"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_chunked_text_equals_unchunked_with_gradients(tiny, name, checkpointing, chunk=2):
    """Seven classes in chunks of 2: three full chunks and a last one of 1."""
    images, labels = _images(tiny)
    m = _build(name, tiny)
    with torch.no_grad():
        plain_text = m.encode_text()
    loss_p, grads_p = _loss_and_grads(m, images, labels)

    m.configure_compute(text_chunk_size=chunk, grad_checkpointing=checkpointing)
    assert m.text_chunk_size == chunk < N_CLS
    with torch.no_grad():
        chunked_text = m.encode_text()
    loss_c, grads_c = _loss_and_grads(m, images, labels)

    torch.testing.assert_close(chunked_text, plain_text, rtol=0, atol=ATOL)
    torch.testing.assert_close(loss_c, loss_p, rtol=0, atol=ATOL)
    _assert_grads_close(grads_p, grads_c)


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("chunk", [3, N_CLS, 10])
def test_cocoop_chunked_equals_unchunked_with_gradients(tiny, checkpointing, chunk):
    """CoCoOp encodes B x n_cls sequences; chunks may straddle two images' prompts (3, 10)."""
    images, labels = _images(tiny, n=3)
    m = _build("cocoop", tiny)
    with torch.no_grad():
        plain_logits = m(images)
    loss_p, grads_p = _loss_and_grads(m, images, labels)

    m.configure_compute(text_chunk_size=chunk, grad_checkpointing=checkpointing)
    with torch.no_grad():
        chunked_logits = m(images)
    loss_c, grads_c = _loss_and_grads(m, images, labels)

    torch.testing.assert_close(chunked_logits, plain_logits, rtol=0, atol=1e-4)  # logits are scaled (x100)
    torch.testing.assert_close(loss_c, loss_p, rtol=0, atol=ATOL)
    _assert_grads_close(grads_p, grads_c)


def test_checkpointing_alone_changes_nothing(tiny):
    """Gradient checkpointing without chunking, through both towers (UPT prompts the image side)."""
    images, labels = _images(tiny)
    m = _build("upt", tiny)
    loss_p, grads_p = _loss_and_grads(m, images, labels)
    m.configure_compute(grad_checkpointing=True)
    loss_c, grads_c = _loss_and_grads(m, images, labels)
    torch.testing.assert_close(loss_c, loss_p, rtol=0, atol=ATOL)
    _assert_grads_close(grads_p, grads_c)


# --- text once per evaluation --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["upt", "coop", "maple"])
def test_cached_text_logits_equal_per_batch_logits(tiny, name):
    images, _ = _images(tiny, n=7)
    batches = [images[:3], images[3:5], images[5:]]
    m = _build(name, tiny, {"dropout": 0.1} if name == "upt" else None)  # eval mode: dropout is off
    with torch.no_grad():
        per_batch = torch.cat([m(b) for b in batches])
        with m.cached_text():
            assert m._text_cache is not None
            cached = torch.cat([m(b) for b in batches])
        assert m._text_cache is None
    torch.testing.assert_close(cached, per_batch, rtol=0, atol=1e-4)  # logits are scaled (x100)
    torch.testing.assert_close(cached.softmax(-1), per_batch.softmax(-1), rtol=0, atol=ATOL)


def test_cached_text_with_chunking_and_reference_style(tiny):
    """Our evaluation (truncated, chunked, text once) == reference-style (77 tokens, text per batch)."""
    images, _ = _images(tiny, n=6)
    m = _build("upt", tiny)
    with torch.no_grad():
        m.configure_compute(truncate_text=False)
        reference = torch.cat([m(images[:2]), m(images[2:])])
        m.configure_compute(text_chunk_size=2)
        with m.cached_text():
            ours = torch.cat([m(images[:2]), m(images[2:])])
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-4)


# --- the benchmark's own helpers -----------------------------------------------------------------
def _speed_module():
    """benchmarks/speed.py, imported by path (it is a script, not part of the package)."""
    name = "upt_benchmarks_speed"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses resolve annotations through sys.modules
        spec.loader.exec_module(mod)
    return sys.modules[name]


def test_benchmark_classnames_are_distinct_short_and_deterministic():
    speed = _speed_module()
    names = speed.make_classnames(1000)
    assert len(set(names)) == 1000 and names == speed.make_classnames(1000)
    assert all(1 <= len(n.split()) <= 3 for n in names)


def test_benchmark_runs_both_styles_on_tiny(tiny):
    """The benchmark's configurations build and step (in-process, one step): no timing asserted."""
    speed = _speed_module()
    cache = {("tiny", None, "cpu"): tiny}
    common = dict(method="coop", n_cls=12, backbone="tiny", batch_size=2, eval_batch_size=2, steps=1, warmup=0,
                  chunk_size=5, checkpointing=True)
    records = []
    for phase in ("train", "eval"):
        ours = speed.Spec(phase=phase, style="ours", **common)
        ref = speed.Spec(phase=phase, style="reference", **common)
        records += speed.measure_pair(ours, ref, cache)
    assert [r["style"] for r in records] == ["ours", "reference"] * 2
    train_ours, train_ref = records[:2]
    assert train_ours["text_chunk_size_used"] == 5 and train_ours["grad_checkpointing_used"]
    assert train_ref["text_tokens"] == 77 and train_ours["text_tokens"] < 77
    assert train_ref["text_chunk_size_used"] is None and not train_ref["grad_checkpointing_used"]
    assert records[2]["text_once_per_eval"] and not records[3]["text_once_per_eval"]
    rows = speed.pair_rows(records)
    assert len(rows) == 2 and all("speed_ratio" in r for r in rows)
    assert "| coop | 12 | train |" in speed.markdown(rows, {"device_name": "cpu", "backbone": "tiny"})


@pytest.mark.parametrize("method,trainable", [
    ("promptsrc", 2 * 4 * (64 + 128)),  # the preset's depths for tiny (2, 2): 4 tokens per layer and tower
    ("tip-adapter", 16 * 12 * (64 + 1) + 2),  # a 16-shot cache of the 12 classes: keys, labels, alpha, beta
    ("tip-adapter-f", 16 * 12 * (64 + 1) + 2),
])
def test_benchmark_times_methods_as_their_presets_build_them(tiny, method, trainable):
    """PromptSRC with the depths its preset gives tiny; Tip-Adapter(-F) with the cache their count describes."""
    speed = _speed_module()
    common = dict(method=method, n_cls=12, backbone="tiny", batch_size=2, eval_batch_size=2, steps=1, warmup=0)
    records = speed.measure_pair(speed.Spec(phase="train", style="ours", **common),
                                 speed.Spec(phase="train", style="reference", **common), {("tiny", None, "cpu"): tiny})
    assert [r["trainable"] for r in records] == [trainable, trainable]
    assert [r["mode"] for r in records] == ["features" if method == "tip-adapter" else "train-step"] * 2


@pytest.mark.parametrize("name,config", [("coop", None), ("upt", None), ("maple", {"depth": 1}),
                                         ("maple", {"depth": 2}), ("cocoop", None)])
@pytest.mark.parametrize("chunk,checkpointing", [(None, False), (3, True), (10, False)])
def test_shared_prefix_equals_full_sequences(tiny, name, config, chunk, checkpointing):
    """Running "[SOS] ctx" once for all classes (once per image for CoCoOp; deep MaPLe prompts on
    the prefix alone) gives the logits and gradients of full prompts."""
    images, labels = _images(tiny)
    shared = _build(name, tiny, config)
    shared.configure_compute(text_chunk_size=chunk, grad_checkpointing=checkpointing)
    full = _build(name, tiny, config)
    full.configure_compute(text_chunk_size=chunk, grad_checkpointing=checkpointing, share_prefix=False)
    with torch.no_grad():
        for p in full.parameters():  # deep prompts away from their zero-ish init, identically in both
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
        for p, q in zip(shared.parameters(), full.parameters(), strict=True):
            p.copy_(q)
        assert torch.allclose(shared(images), full(images), atol=1e-4)
    loss_a, grads_a = _loss_and_grads(shared, images, labels)
    loss_b, grads_b = _loss_and_grads(full, images, labels)
    assert abs(loss_a - loss_b) <= ATOL
    _assert_grads_close(grads_a, grads_b)
