"""One contract suite over every registered method, plus each method's own promises."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import shared_path
from upt.errors import UptError
from upt.methods import REGISTRY, build_method, get_method_class

CLASSES = ["tabby cat", "golden retriever", "sea_lion", "airliner", "red fox"]
# Defaults that do not fit the 2-layer tiny backbone.
TINY_CONFIG = {"maple": {"depth": 2}, "promptsrc": {"depth_text": 2, "depth_vision": 2}}
ALL = sorted(REGISTRY)


def _build(name, backbone, classes=CLASSES, **extra):
    torch.manual_seed(0)
    m = build_method(name, backbone, classes, config={**TINY_CONFIG.get(name, {}), **extra})
    if m.fit_before_training:  # gradient training starts from a closed-form fit (Tip-Adapter-F's cache)
        _fit_closed_form(m, backbone)
    return m


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, len(CLASSES), (n,), generator=g)


def _fit_closed_form(method, backbone):
    """What the engine does for methods that do not learn by gradient."""
    images, labels = _batch(12)
    with torch.no_grad():
        feats = method.encode_image(images)
    method.fit_features((feats[:8], labels[:8]), (feats[8:], labels[8:]))


@pytest.mark.parametrize("name", ALL)
def test_logits_shape_and_finite(tiny, name):
    m = _build(name, tiny)
    images, _ = _batch()
    logits = m(images)
    assert logits.shape == (6, len(CLASSES)) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ALL)
def test_training_changes_only_trainable_tensors(tiny, name):
    m = _build(name, tiny)
    frozen = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    before = {k: v.clone() for k, v in m.trainable_state_dict().items()}
    if m.trains_by_gradient:
        params = [p for p in m.parameters() if p.requires_grad]
        assert params
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
        m.train()
        for step in range(3):
            images, labels = _batch(seed=step)
            loss = F.cross_entropy(m(images), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
        after = m.trainable_state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before)
    else:
        _fit_closed_form(m, tiny)
    assert all(torch.equal(frozen[k], v) for k, v in tiny.model.state_dict().items())
    assert all(not p.requires_grad for p in tiny.model.parameters())


@pytest.mark.parametrize("name", ALL)
def test_save_load_gives_identical_logits(tiny, name, tmp_path):
    from safetensors.torch import load_file, save_file

    m = _build(name, tiny)
    if not m.trains_by_gradient:
        _fit_closed_form(m, tiny)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # differ from a fresh init
    save_file({k: v.contiguous() for k, v in m.trainable_state_dict().items()}, tmp_path / "p.safetensors")
    fresh = _build(name, tiny)
    fresh.load_trainable_state_dict(load_file(tmp_path / "p.safetensors"))
    m.eval()
    fresh.eval()
    images, _ = _batch()
    with torch.no_grad():
        assert torch.equal(m(images), fresh(images))


@pytest.mark.parametrize("name", ALL)
def test_set_classnames(tiny, name):
    m = _build(name, tiny)
    if not m.trains_by_gradient:
        _fit_closed_form(m, tiny)
    trained = {k: v.clone() for k, v in m.trainable_state_dict().items()}
    images, _ = _batch()
    m.eval()
    if m.open_vocabulary:
        m.set_classnames(["daisy", "rose", "tulip"])
        assert m(images).shape == (6, 3)
    else:
        with pytest.raises(UptError, match="only knows the classes"):
            m.set_classnames(["daisy", "rose", "tulip"])
        full = m(images)
        m.set_classnames(CLASSES[::-2])  # a reordered subset works
        assert torch.allclose(m(images), full[:, [4, 2, 0]])
    assert all(torch.equal(trained[k], v) for k, v in m.trainable_state_dict().items())


@pytest.mark.parametrize("name", ALL)
def test_parameter_count_matches_formula(tiny, name):
    m = _build(name, tiny)
    shots = getattr(m, "count_shots", None)
    if shots:  # the formula describes a cache of `shots` images per class (Tip-Adapter)
        labels = torch.arange(len(CLASSES)).repeat(shots)
        none = torch.zeros(0, tiny.embed_dim)
        m.fit_features((torch.randn(len(labels), tiny.embed_dim), labels), (none, labels[:0]))
    assert m.num_trainable() == get_method_class(name).count_parameters(m.config, tiny, len(CLASSES))


@pytest.mark.parametrize(
    "name,config",
    [("coop", {"csc": True}), ("coop", {"ctx_init": "a photo of a"}), ("vpt", {"mode": "deep"}),
     ("vpt", {"mode": "deep", "depth": 1}), ("upt", {"visual_prompt": "deep"}), ("upt", {"ffn_mult": 4}),
     ("upt", {"n_t": 2, "n_v": 8}), ("maple", {"depth": 1}), ("zeroshot", {"templates": "ensemble"})],
)
def test_variants_count_and_run(tiny, name, config):
    m = _build(name, tiny, **config)
    assert m.num_trainable() == get_method_class(name).count_parameters(m.config, tiny, len(CLASSES))
    assert torch.isfinite(m(_batch()[0])).all()


def test_upt_on_vit_b16_has_the_documented_parameter_count(vit_b16):
    m = build_method("upt", vit_b16, CLASSES)
    assert m.num_trainable() == 1_976_064
    assert get_method_class("upt").count_parameters(m.config, vit_b16, 5) == 1_976_064


@pytest.mark.parametrize("mixing,others_change", [("reference", False), ("paper", True)])
def test_upt_token_mixing(tiny, mixing, others_change):
    m = _build("upt", tiny, token_mixing=mixing).eval()
    with torch.no_grad():
        before = m.net.mix().clone()
        m.net.prompt[2] += 1.0
        after = m.net.mix()
    changed = (after - before).abs().amax(dim=1) > 1e-6
    assert changed[2]
    assert bool(changed[torch.arange(len(changed)) != 2].any()) is others_change


def test_coop_from_phrase_equals_zeroshot(tiny):
    coop = _build("coop", tiny, ctx_init="a photo of a").eval()
    zs = _build("zeroshot", tiny).eval()
    images, _ = _batch()
    with torch.no_grad():
        assert (coop(images) - zs(images)).abs().max().item() <= 1e-4


def test_text_features_cached_within_evaluation(tiny):
    m = _build("upt", tiny).eval()
    images, _ = _batch()
    with torch.no_grad():
        per_batch = m(images)
        with m.cached_text():
            calls = []
            orig = m.prompt.encode
            m.prompt.encode = lambda *a, **k: calls.append(1) or orig(*a, **k)
            once = torch.cat([m(images[:3]), m(images[3:])])
    assert calls == [] and torch.allclose(per_batch, once, atol=1e-5)


@pytest.mark.parametrize(
    "name,config,match",
    [("coop", {"n_ctx": 0}, "n_ctx must be a positive"),
     ("coop", {"class_token_position": "side"}, "Unknown class_token_position 'side'"),
     ("vpt", {"mode": "deep", "depth": 5}, "VPT depth 5 exceeds the 2 vision layers"),
     ("maple", {"depth": 9}, "MaPLe depth 9 exceeds the 2 layers"),
     ("upt", {"token_mixing": "both"}, "Unknown token_mixing 'both'"),
     ("upt", {"nt": 3}, r"Unknown option\(s\) \['nt'\] for method 'upt'")],
)
def test_config_errors_are_sentences(tiny, name, config, match):
    with pytest.raises(UptError, match=match):
        build_method(name, tiny, CLASSES, config=config)


def test_visual_method_on_backbone_without_vision_seams():
    from upt.backbone import load_backbone

    rn = load_backbone("RN50", None)
    with pytest.raises(UptError, match="visual-prompt seams.*RN50"):
        build_method("vpt", rn, CLASSES)


def test_unknown_method_suggests_closest(tiny):
    with pytest.raises(UptError, match="Did you mean 'coop'"):
        build_method("coopp", tiny, CLASSES)


@pytest.fixture(scope="module")
def flowers():
    from torchvision import datasets, transforms

    root = shared_path("data", "flowers5")
    tf = transforms.Compose([
        transforms.Resize(32, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(32), transforms.ToTensor(),
        transforms.Normalize((0.481, 0.458, 0.408), (0.269, 0.261, 0.276)),
    ])
    ds = datasets.ImageFolder(str(root), tf)
    idx = [i for c in range(5) for i in [j for j, t in enumerate(ds.targets) if t == c][:8]]
    images = torch.stack([ds[i][0] for i in idx])
    return images, torch.tensor([ds.targets[i] for i in idx]), ds.classes


@pytest.mark.parametrize("name", [n for n in ALL if get_method_class(n).trains_by_gradient])
def test_training_on_real_photos_lowers_the_loss(tiny, flowers, name):
    images, labels, classes = flowers
    m = _build(name, tiny, classes=classes)
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=0.05 if name != "upt" else 0.01, weight_decay=0.0)

    def loss_now():
        m.eval()
        with torch.no_grad():
            return F.cross_entropy(m(images), labels).item()

    start = loss_now()
    m.train()
    for _ in range(20):
        loss = F.cross_entropy(m(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss_now() < start - 0.01  # a random-weight CLIP caps how far the loss can fall
