"""MaPLe against methods.md, computed here straight from open_clip's modules (no upt seams)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from upt.backbone.blocks import is_batch_first
from upt.methods import build_method

CLASSES = ["tabby cat", "sea lion", "airliner"]


def _blocks(transformer, x, mask, before):
    """x batch-first; ``before(i, x)`` may replace tokens before block i."""
    bf = is_batch_first(transformer)
    for i, blk in enumerate(transformer.resblocks):
        x = before(i, x)
        x = blk(x if bf else x.transpose(0, 1), attn_mask=mask)
        x = x if bf else x.transpose(0, 1)
    return x


def _reference_logits(m, tiny, images):
    model = tiny.model
    t = [m.ctx, *m.deep_ctx]  # T_0..T_{J-1}, each (M, d_t)
    v = [lin(ti) for lin, ti in zip(m.proj, t, strict=True)]  # V_l = Linear_l(T_l)
    mm = t[0].shape[0]
    # Text: "a photo of a {c}." with its first M word slots learned; deeper layers replace them.
    ids = tiny.tokenizer([f"a photo of a {c}." for c in CLASSES])
    x = model.token_embedding(ids)
    x = torch.cat([x[:, :1], t[0].expand(len(CLASSES), -1, -1), x[:, 1 + mm :]], 1) + model.positional_embedding

    def text_before(i, h):
        if 0 < i < len(t):
            h = torch.cat([h[:, :1], t[i].expand(h.shape[0], -1, -1), h[:, 1 + mm :]], 1)
        return h

    x = _blocks(model.transformer, x, model.attn_mask, text_before)
    text = model.ln_final(x)[torch.arange(len(CLASSES)), ids.argmax(-1)] @ model.text_projection
    # Image: V_0 appended after the patches before ln_pre; deeper layers replace the last M tokens.
    vis = model.visual
    p = vis.conv1(images).flatten(2).transpose(1, 2)
    p = torch.cat([vis.class_embedding.expand(len(images), 1, -1), p], 1) + vis.positional_embedding
    p = vis.ln_pre(torch.cat([p, v[0].expand(len(images), -1, -1)], 1))

    def image_before(i, h):
        if 0 < i < len(v):
            h = torch.cat([h[:, :-mm], v[i].expand(h.shape[0], -1, -1)], 1)
        return h

    p = _blocks(vis.transformer, p, None, image_before)
    image = vis.ln_post(p[:, 0]) @ vis.proj
    return tiny.logit_scale * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()


@pytest.mark.parametrize("depth", [1, 2])
def test_maple_matches_methods_md(tiny, depth):
    torch.manual_seed(3)
    m = build_method("maple", tiny, CLASSES, config={"depth": depth}).eval()
    with torch.no_grad():
        for prm in m.deep_ctx:
            prm.normal_(0, 0.5)
        images = torch.randn(4, 3, 32, 32)
        assert (m(images) - _reference_logits(m, tiny, images)).abs().max().item() <= 1e-4


def test_maple_layer0_context_starts_from_a_photo(tiny):
    m = build_method("maple", tiny, CLASSES, config={"depth": 1})
    ids = tiny.tokenizer(["a photo"])
    with torch.no_grad():
        assert torch.allclose(m.ctx, tiny.model.token_embedding(ids)[0, 1:3])
