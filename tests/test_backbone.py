"""Backbone seams pinned to open_clip: parity without prompts, truncation, prompt insertion."""

from __future__ import annotations

import pytest
import torch

from upt.backbone import load_backbone
from upt.errors import UptError

TOL = 1e-5
SENTENCES = ["a photo of a cat.", "a photo of a golden retriever.", "itap of a sea lion, a type of mammal."]


@pytest.mark.parametrize("name", ["tiny", "vit_b16"])
def test_text_and_vision_seams_equal_open_clip(name, request):
    b = request.getfixturevalue(name)
    ids = b.text.tokenize(SENTENCES)
    with torch.no_grad():
        assert (b.text.encode_ids(ids) - b.model.encode_text(ids)).abs().max().item() <= TOL
        size = b.preprocess.size
        images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        assert (b.vision.encode_images(images) - b.model.encode_image(images)).abs().max().item() <= TOL


def test_backbone_is_frozen_and_describes_itself(tiny):
    assert not any(p.requires_grad for p in tiny.model.parameters())
    assert not tiny.model.training
    d = tiny.describe()
    assert (d["embed_dim"], d["text_width"], d["vision_width"]) == (64, 64, 128)
    assert tiny.preprocess.size == 32 and tiny.preprocess.interpolation == "bicubic"
    assert 1 < float(tiny.logit_scale) < 1000


def test_embeddings_of_a_sentence_through_the_seam(tiny):
    ids = tiny.text.tokenize(["a photo of a cat."])
    with torch.no_grad():
        emb = tiny.text.embed(ids)
        assert emb.shape == (1, 77, tiny.text.width)
        got = tiny.text.encode(emb, ids)
        assert (got - tiny.model.encode_text(ids)).abs().max().item() <= TOL


def test_eos_truncation_is_exact(vit_b16):
    ids = vit_b16.text.tokenize(SENTENCES)
    with torch.no_grad():
        emb = vit_b16.text.embed(ids)
        full = vit_b16.text.encode(emb, ids, truncate=False)
        cut = vit_b16.text.encode(emb, ids, truncate=True)
    assert (full - cut).abs().max().item() <= TOL


def test_chunked_text_encoding_equals_one_pass(tiny):
    ids = tiny.text.tokenize(SENTENCES * 3)
    with torch.no_grad():
        emb = tiny.text.embed(ids)
        assert torch.allclose(tiny.text.encode(emb, ids, chunk_size=2), tiny.text.encode(emb, ids), atol=TOL)


def test_deep_text_prompts_replace_positions(tiny):
    ids = tiny.text.tokenize(SENTENCES)
    with torch.no_grad():
        emb = tiny.text.embed(ids)
        base = tiny.text.encode(emb, ids)
        deep = tiny.text.encode(emb, ids, layer_prompts=[None, torch.randn(2, tiny.text.width)])
    assert deep.shape == base.shape and not torch.allclose(deep, base)


def _layer_lengths(b, fn):
    """Token counts entering each vision block while ``fn`` runs."""
    from upt.backbone.blocks import is_batch_first

    lengths = []
    token_dim = 1 if is_batch_first(b.model.visual.transformer) else 0  # open_clip < 2.27 runs sequence-first
    hooks = [blk.register_forward_pre_hook(lambda m, a: lengths.append(a[0].shape[token_dim]))
             for blk in b.model.visual.transformer.resblocks]
    try:
        fn()
    finally:
        for h in hooks:
            h.remove()
    return lengths


@pytest.mark.parametrize("mode", ["shallow", "deep", "appended"])
def test_visual_prompt_insertion(tiny, mode):
    v = tiny.vision
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    n, width = 4, v.width
    prompts = torch.randn(n, width) if mode == "shallow" else torch.randn(v.layers, n, width)
    with torch.no_grad():
        tokens = v.embed(images)
        assert tokens.shape == (3, 1 + 16, width)
        plain = v.encode(tokens)
        prompted = v.encode(tokens, prompts, mode)
        lengths = _layer_lengths(tiny, lambda: v.encode(tokens, prompts, mode))
    assert prompted.shape == plain.shape == (3, tiny.embed_dim)
    assert not torch.allclose(prompted, plain)
    assert lengths == [1 + 16 + n] * v.layers  # deep replacement keeps the count constant


def test_prompt_depth_beyond_layers_is_a_clear_error(tiny):
    v = tiny.vision
    with pytest.raises(UptError, match="3 prompt layers asked"):
        v.encode(v.embed(torch.randn(1, 3, 32, 32)), torch.randn(3, 2, v.width), "deep")


@pytest.fixture(scope="module")
def resnet():
    return load_backbone("RN50", None)


def test_unsupported_model_encodes_but_refuses_prompts(resnet):
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert resnet.vision.encode_images(images).shape == (1, 1024)
    with pytest.raises(UptError, match="RN50.*ModifiedResNet"):
        resnet.vision.embed(images)


def test_custom_text_model_refuses_text_prompts():
    import open_clip

    from upt.backbone import TextTower

    model = open_clip.create_model("ViT-B-32", force_custom_text=True).eval()  # a CustomTextCLIP
    text = TextTower(model, open_clip.get_tokenizer("ViT-B-32"), "ViT-B-32 (custom text)")
    ids = text.tokenize(["a cat"])
    with torch.no_grad():
        assert torch.allclose(text.encode_ids(ids), model.encode_text(ids))
    with pytest.raises(UptError, match=r"ViT-B-32 \(custom text\).*CustomTextCLIP"):
        text.embed(ids)


def test_unknown_backbone_suggests_the_closest():
    with pytest.raises(UptError, match="Did you mean 'ViT-B-16'"):
        load_backbone("ViT-B16", None)
