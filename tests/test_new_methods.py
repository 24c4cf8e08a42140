"""KgCoOp, PromptSRC, CLIP-LoRA and Tip-Adapter(-F) against their reference code, computed here straight
from open_clip's modules (no upt seams), plus the training hooks they use."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F

from helpers import interrupt_epoch, shared_path
from test_maple import _blocks
from upt.engine.config import OptimConfig
from upt.engine.precision import resolve_precision
from upt.engine.train import Trainer
from upt.methods import build_method, get_method_class
from upt.methods.base import StepSchedule
from upt.methods.promptsrc import PROMPTSRC_TEMPLATES

CLASSES = ["tabby cat", "sea_lion", "airliner"]
TEMPLATE = "a photo of a {}, a type of animal."


def _n(x):
    return F.normalize(x.float(), dim=-1)


def _prompted_text(model, tokenizer, ctx, deep=(), phrase="a photo of a"):
    """"{phrase} {class}." with its first M word slots replaced by ``ctx``; ``deep[l-1]`` replaces them before block l."""
    ids = tokenizer([f"{phrase} {c.replace('_', ' ')}." for c in CLASSES])
    m = ctx.shape[0]
    x = model.token_embedding(ids)
    x = torch.cat([x[:, :1], ctx.expand(len(CLASSES), -1, -1), x[:, 1 + m :]], 1) + model.positional_embedding

    def before(i, h):
        if 0 < i <= len(deep):
            h = torch.cat([h[:, :1], deep[i - 1].expand(h.shape[0], -1, -1), h[:, 1 + m :]], 1)
        return h

    x = _blocks(model.transformer, x, model.attn_mask, before)
    return model.ln_final(x)[torch.arange(len(CLASSES)), ids.argmax(-1)] @ model.text_projection


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, len(CLASSES), (n,), generator=g)


# --- KgCoOp -------------------------------------------------------------------------------------
def _kgcoop_reference(model, tokenizer, ctx, images, labels, weight=8.0):
    """trainers/kgcoop.py CustomCLIP.forward and forward_backward: logits and CE + W * (1 - mean cos)."""
    text = _n(_prompted_text(model, tokenizer, ctx))
    old = _n(model.encode_text(tokenizer([TEMPLATE.format(c.replace("_", " ")) for c in CLASSES])))
    logits = model.logit_scale.exp() * _n(model.encode_image(images)) @ text.t()
    score = 1.0 - torch.mean(torch.nn.CosineSimilarity(dim=1, eps=1e-07)(text, old))
    return logits, score, F.cross_entropy(logits, labels) + weight * score


def test_kgcoop_matches_the_reference(tiny):
    torch.manual_seed(1)
    m = build_method("kgcoop", tiny, CLASSES, template=TEMPLATE).train()
    with torch.no_grad():
        m.ctx.add_(torch.randn_like(m.ctx) * 0.5)
    images, labels = _batch()
    logits = m(images)
    reg = m.regularization()
    with torch.no_grad():
        want_logits, want_score, _ = _kgcoop_reference(tiny.model, tiny.tokenizer, m.ctx, images, labels)
    assert (logits - want_logits).abs().max().item() <= 1e-4
    assert reg.item() == pytest.approx(8.0 * want_score.item(), abs=1e-5) and reg.item() > 1e-3
    assert m.regularization() is None  # used once per step
    # the reference's 1 - mean cos is the paper's mean squared distance of unit vectors, halved
    text, old = m.encode_text(), m.clip_text
    assert reg.item() == pytest.approx(8.0 / 2 * ((text - old) ** 2).sum(1).mean().item(), abs=1e-5)


def test_kgcoop_anchor_is_the_release_template(tiny):
    """CUSTOM_TEMPLATES of trainers/kgcoop.py: CoOp's, except DTD's "a photo of a {}, a type of texture."."""
    def anchor(template, **config):
        return build_method("kgcoop", tiny, CLASSES, template=template, config=config).clip_text

    def encoded(template):
        with torch.no_grad():
            return _n(tiny.model.encode_text(tiny.tokenizer([template.format(c.replace("_", " ")) for c in CLASSES])))

    assert torch.allclose(anchor("{} texture."), encoded("a photo of a {}, a type of texture."), atol=1e-6)
    assert torch.allclose(anchor("{} texture.", anchor_template="dataset"), encoded("{} texture."), atol=1e-6)
    assert torch.allclose(anchor(TEMPLATE), encoded(TEMPLATE), atol=1e-6)


def test_training_step_adds_the_regularization(tiny):
    """One SGD step of the engine moves the context along the gradient of CE + W * (1 - mean cos)."""
    torch.manual_seed(1)
    m = build_method("kgcoop", tiny, CLASSES, template=TEMPLATE)
    with torch.no_grad():
        m.ctx.add_(torch.randn_like(m.ctx) * 0.5)
    images, labels = _batch()
    ctx = m.ctx.detach().clone().requires_grad_(True)
    loss = _kgcoop_reference(tiny.model, tiny.tokenizer, ctx, images, labels)[2]
    loss.backward()
    optim = OptimConfig(name="sgd", lr=0.5, momentum=0.0, weight_decay=0.0, warmup_epochs=0, batch_size=6, epochs=1)
    stats = Trainer(m, optim, 1, resolve_precision("fp32", "cpu")).run_epoch(0, [(images, labels)])
    assert stats["loss"] == pytest.approx(loss.item(), abs=1e-4)
    assert torch.allclose(m.ctx.detach(), ctx.detach() - 0.5 * ctx.grad, atol=1e-5)


# --- PromptSRC -----------------------------------------------------------------------------------
def _promptsrc_reference(m, tiny, images, labels):
    """trainers/promptsrc.py: the IVLP forward and the self-regulating terms of forward_backward."""
    model, tokenizer = tiny.model, tiny.tokenizer
    text = _n(_prompted_text(model, tokenizer, m.ctx, list(m.deep_ctx)))
    vis, v = model.visual, list(m.visual)
    x = vis.conv1(images).flatten(2).transpose(1, 2)
    x = torch.cat([vis.class_embedding.expand(len(images), 1, -1), x], 1) + vis.positional_embedding
    x = vis.ln_pre(torch.cat([x, v[0].expand(len(images), -1, -1)], 1))  # VPT appended before ln_pre

    def before(i, h):  # ResidualAttentionBlock_IVLP: the last n_ctx tokens replaced by this layer's
        if 0 < i < len(v):
            h = torch.cat([h[:, : -v[i].shape[0]], v[i].expand(h.shape[0], -1, -1)], 1)
        return h

    image = _n(vis.ln_post(_blocks(vis.transformer, x, None, before)[:, 0]) @ vis.proj)
    scale = model.logit_scale.exp()
    logits = scale * image @ text.t()
    raw = [model.encode_text(tokenizer([t.replace("{}", c.replace("_", " ")) for c in CLASSES]))
           for t in PROMPTSRC_TEMPLATES]
    fixed = _n(torch.stack(raw, 1).mean(1))  # mean of raw features, then normalised
    zs_image = _n(model.encode_image(images))
    zs_logits = scale * zs_image @ fixed.t()
    l_text = F.l1_loss(text, fixed, reduction="mean") * 25
    l_image = F.l1_loss(image, zs_image, reduction="mean") * 10
    kl = F.kl_div(F.log_softmax(logits / 1, dim=1), F.log_softmax(zs_logits / 1, dim=1), reduction="sum",
                  log_target=True) * (1 * 1) / logits.numel()
    return logits, l_text + l_image + kl


def test_promptsrc_matches_the_reference(tiny):
    torch.manual_seed(2)
    m = build_method("promptsrc", tiny, CLASSES, config={"depth_text": 2, "depth_vision": 2}).train()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    images, labels = _batch()
    logits = m(images)
    reg = m.regularization()
    with torch.no_grad():
        want_logits, want_reg = _promptsrc_reference(m, tiny, images, labels)
    assert (logits - want_logits).abs().max().item() <= 1e-4
    assert reg.item() == pytest.approx(want_reg.item(), rel=1e-4) and reg.item() > 1e-3
    with torch.no_grad():  # no regularization outside training
        m(images)
    assert m.regularization() is None


def test_promptsrc_gaussian_prompt_aggregation_and_its_resume(tiny):
    torch.manual_seed(3)
    cfg = {"depth_text": 2, "depth_vision": 2, "gpa_mean": 2.0, "gpa_std": 1.0}
    m = build_method("promptsrc", tiny, CLASSES, config=cfg)
    g = [math.exp(-0.5 * ((e - 2.0) / 1.0) ** 2) / math.sqrt(2 * math.pi) for e in (1, 2, 3)]
    g = [x / sum(g) for x in g]  # the reference's get_gauss over epochs 1..3, normalised
    snapshots = []
    for epoch in range(3):
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn_like(p))
        snapshots.append({k: v.detach().clone() for k, v in m.named_parameters()})
        if epoch == 1:  # resume here: a fresh method with the checkpointed aggregate continues the same way
            state = {k: v.clone() for k, v in m.training_state().items()}
            params = {k: v.clone() for k, v in m.trainable_state_dict().items()}
            m = build_method("promptsrc", tiny, CLASSES, config=cfg)
            m.load_trainable_state_dict(params)
            m.load_training_state(state)
        assert m.on_epoch_end(epoch, 3)["gpa_weight"] == pytest.approx(g[epoch])
    for name, p in m.named_parameters():
        want = sum(w * s[name] for w, s in zip(g, snapshots, strict=True))
        assert torch.allclose(p, want, atol=1e-6), name


# --- CLIP-LoRA -----------------------------------------------------------------------------------
def _merged(tiny, m):
    """The reference's evaluation model: LinearLoRA merges W + (alpha / sqrt(r)) * B A into each weight."""
    model = copy.deepcopy(tiny.model)
    s = m.config.alpha / math.sqrt(m.config.rank)
    for tower, stack in (("text", m.text_lora), ("vision", m.vision_lora)):
        blocks = (model.transformer if tower == "text" else model.visual.transformer).resblocks
        for layer, pairs in stack.blocks.items():
            attn = blocks[int(layer)].attn
            d = attn.embed_dim
            with torch.no_grad():
                for i, p in enumerate("qkv"):
                    if p in m.config.params:
                        attn.in_proj_weight[i * d : (i + 1) * d] += s * pairs[f"{p}_B"] @ pairs[f"{p}_A"]
                if "o" in m.config.params:
                    attn.out_proj.weight += s * pairs["o_B"] @ pairs["o_A"]
    return model


@pytest.mark.parametrize("config", [{}, {"params": ["q", "v", "o"], "rank": 3, "alpha": 2.0, "layers": [1],
                                     "template": "dataset"}])
def test_clip_lora_matches_merged_weights(tiny, config):
    torch.manual_seed(4)
    m = build_method("clip-lora", tiny, CLASSES, template=TEMPLATE, config=config).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    images, _ = _batch()
    model = _merged(tiny, m)
    template = TEMPLATE if config.get("template") == "dataset" else "a photo of a {}."  # the release: every dataset
    with torch.no_grad():
        text = _n(model.encode_text(tiny.tokenizer([template.format(c.replace("_", " ")) for c in CLASSES])))
        want = model.logit_scale.exp() * _n(model.encode_image(images)) @ text.t()
        assert (m(images) - want).abs().max().item() <= 1e-4


def test_clip_lora_starts_from_clip_and_drops_out_only_the_update(tiny):
    torch.manual_seed(5)
    m = build_method("clip-lora", tiny, CLASSES, template=TEMPLATE).train()
    zs = build_method("zeroshot", tiny, CLASSES, template="a photo of a {}.").eval()
    images, _ = _batch()
    with torch.no_grad():
        assert (m(images) - zs(images)).abs().max().item() <= 1e-4  # B = 0: CLIP itself, dropout or not
        for p in m.parameters():
            p.normal_(0, 0.3)
        first, second = m(images), m(images)
        assert (first - second).abs().max().item() > 1e-4  # fresh dropout masks on the update's input
        m.eval()
        assert torch.equal(m(images), m(images))
    assert all(k.endswith(("_A", "_B")) for k in m.trainable_state_dict())


def test_step_schedule_is_torch_cosine_annealing():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 7, eta_min=1e-6)
    ours = StepSchedule(7, eta_min=1e-6)
    for step in range(7):
        assert ours.lr(step, 2e-4) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        opt.step()
        sched.step()


def test_clip_lora_runs_500_iterations_per_shot(tiny):
    m = build_method("clip-lora", tiny, CLASSES)
    assert m.step_schedule(200, 3, 4) == StepSchedule(2000, eta_min=1e-6)
    f = build_method("tip-adapter-f", tiny, CLASSES)
    assert f.step_schedule(20, 3, 16) == StepSchedule(60, eta_min=0.0, eps=1e-4)
    optim = OptimConfig(name="adamw", lr=1e-3, weight_decay=0.01)
    assert Trainer(f, optim, 20, resolve_precision("fp32", "cpu"), f.step_schedule(20, 3, 16)) \
        .optimizer.defaults["eps"] == 1e-4


# --- Tip-Adapter ---------------------------------------------------------------------------------
def _features(tiny, n, seed):
    images, labels = _batch(n, seed)
    with torch.no_grad():
        return _n(tiny.model.encode_image(images)), labels


def test_tip_adapter_logits_match_the_reference(tiny):
    m = build_method("tip-adapter", tiny, CLASSES, template=TEMPLATE, config={"search": False, "init_alpha": 2.5,
                                                                               "init_beta": 3.0})
    views = torch.stack([_features(tiny, 9, 0)[0], _features(tiny, 9, 1)[0]])  # 2 views of 9 images
    labels = torch.tensor([0, 1, 2] * 3)
    m.fit_features((views, labels), (torch.zeros(0, tiny.embed_dim), torch.zeros(0, dtype=torch.long)))
    f, _ = _features(tiny, 5, 3)
    with torch.no_grad():
        keys = _n(views.mean(0)).t()  # build_cache_model: mean over views, normalised, (D, N)
        cache = ((-1) * (3.0 - 3.0 * (f @ keys))).exp() @ F.one_hot(labels).float()  # (5, 3)

        def zero_shot(names):
            prompts = [TEMPLATE.format(c.replace("_", " ")) for c in names]
            return tiny.logit_scale * f @ _n(tiny.model.encode_text(tiny.tokenizer(prompts))).t()

        assert (m.logits(f) - (zero_shot(CLASSES) + cache * 2.5)).abs().max().item() <= 1e-4
        names = ["airliner", "daisy", "tabby cat"]  # daisy: a class the cache never saw gets zero-shot CLIP alone
        m.set_classnames(names)
        want = zero_shot(names) + 2.5 * torch.stack([cache[:, 2], torch.zeros(5), cache[:, 0]], 1)
        assert (m.logits(f) - want).abs().max().item() <= 1e-4


def test_tip_adapter_keys_average_the_views_raw_features_as_build_cache_model(tiny):
    """The engine hands fit_features what encode_image gives for each view: the raw features, so a
    key is the normalised mean of raw features (utils.build_cache_model), not of normalised ones."""
    m = build_method("tip-adapter", tiny, CLASSES, config={"search": False})
    views = [_batch(9, seed)[0] for seed in (0, 1)]
    with torch.no_grad():
        encoded = torch.stack([m.encode_image(v) for v in views])  # (V, N, D), as FeatureEpochs stacks them
        raw = torch.stack([tiny.model.encode_image(v) for v in views])
    assert torch.equal(encoded, raw.float())
    m.fit_features((encoded, torch.tensor([0, 1, 2] * 3)), (torch.zeros(0, tiny.embed_dim), torch.zeros(0).long()))
    assert torch.allclose(m.keys, _n(raw.mean(0)), atol=1e-6)
    assert not torch.allclose(m.keys, _n(_n(raw).mean(0)), atol=1e-4)  # the two averages differ here
    f = m.encode_image(views[0])
    assert torch.allclose(m.logits(f), m.logits(_n(f)), atol=1e-5)  # logits normalise what they score


def _search_hp(scale, step, keys, values, features, labels, weights):
    """utils.search_hp, transcribed (accuracy as cls_acc, first best kept)."""
    beta_list = [i * (scale[0] - 0.1) / step[0] + 0.1 for i in range(step[0])]
    alpha_list = [i * (scale[1] - 0.1) / step[1] + 0.1 for i in range(step[1])]
    best_acc, best_beta, best_alpha = 0, 0, 0
    for beta in beta_list:
        for alpha in alpha_list:
            cache_logits = ((-1) * (beta - beta * (features @ keys))).exp() @ values
            tip_logits = 100.0 * features @ weights + cache_logits * alpha
            acc = 100 * float((tip_logits.argmax(1) == labels).sum()) / labels.shape[0]
            if acc > best_acc:
                best_acc, best_beta, best_alpha = acc, beta, alpha
    return best_beta, best_alpha


def test_tip_adapter_searches_alpha_beta_as_the_reference_on_validation_features(tiny):
    cfg = {"search_scale": [7.0, 3.0], "search_step": [20, 6]}
    m = build_method("tip-adapter", tiny, CLASSES, template=TEMPLATE, config=cfg)
    train, val = _features(tiny, 12, 0), _features(tiny, 30, 1)
    fit = m.fit_features(train, val)
    weights = m.text_features.t() * (tiny.logit_scale / 100.0)  # the reference writes 100 for CLIP's temperature
    beta, alpha = _search_hp(cfg["search_scale"], cfg["search_step"], _n(train[0]).t(),
                             F.one_hot(train[1], 3).float(), val[0], val[1], weights)
    assert (fit["beta"], fit["alpha"]) == pytest.approx((beta, alpha))
    assert (m.beta.item(), m.alpha.item()) == pytest.approx((beta, alpha))


def test_tip_adapter_f_keeps_the_best_validation_epoch_then_searches(tiny):
    m = build_method("tip-adapter-f", tiny, CLASSES, config={"search_step": [5, 4]})
    train, val = _features(tiny, 12, 0), _features(tiny, 30, 1)
    m.fit_features(train, val)
    assert m.keys.requires_grad and (m.alpha.item(), m.beta.item()) == pytest.approx((1.17, 1.0))
    cached = m.keys.detach().clone()
    accuracies, keys = [], []
    for epoch in range(3):
        with torch.no_grad():
            m.keys.copy_(F.normalize(cached + torch.randn_like(cached) * 0.5, dim=-1))
        keys.append(m.keys.detach().clone())
        record = m.on_epoch_end(epoch, 3)
        accuracies.append(record["val_accuracy"])
        if epoch == 0:  # resume after the first epoch: the best keys so far come back
            state = m.training_state()
            m._best = None
            m.load_training_state(state)
    best = accuracies.index(max(accuracies))
    assert torch.equal(m.keys.detach(), keys[best])
    weights = m.text_features.t() * (tiny.logit_scale / 100.0)
    beta, alpha = _search_hp((7.0, 3.0), (5, 4), m.keys.detach().t(), F.one_hot(train[1], 3).float(), val[0], val[1],
                             weights)  # search_hp(..., adapter=adapter): the trained keys, unnormalised
    assert (record["search_beta"], record["search_alpha"]) == pytest.approx((beta, alpha))
    assert (m.beta.item(), m.alpha.item()) == pytest.approx((beta, alpha))


# --- parameter counts on ViT-B/16 ----------------------------------------------------------------
def test_parameter_counts_on_vit_b16(vit_b16):
    def count(name, n_cls=100, **config):
        cls = get_method_class(name)
        return cls.count_parameters(cls.Config(**config), vit_b16, n_cls)

    assert count("kgcoop") == 4 * 512 == 2_048
    assert count("promptsrc") == 9 * 4 * 512 + 9 * 4 * 768 == 46_080  # the paper's "46K"
    assert count("promptsrc", depth_text=3, depth_vision=3) == 15_360  # cross-dataset / DG config
    assert count("clip-lora") == 12 * 3 * 2 * 2 * (512 + 768) == 184_320
    assert count("tip-adapter-f", 1000) == 16_000 * 513 + 2 == 8_208_002  # 16-shot ImageNet: keys, labels, alpha, beta
    for name in ("kgcoop", "promptsrc", "clip-lora"):
        assert build_method(name, vit_b16, CLASSES).num_trainable() == count(name, len(CLASSES))


# --- end to end: resume restores GPA's aggregate and Tip-Adapter-F's best keys ---------------------
@pytest.mark.parametrize("method,extra", [
    ("promptsrc", ["--set", "method_config.depth_text=2", "--set", "method_config.depth_vision=2",
                   "--set", "method_config.gpa_mean=2"]),
    ("tip-adapter-f", ["--set", "method_config.augment_views=2", "--set", "method_config.search_step=[5,4]"]),
])
def test_resume_matches_a_straight_run(tmp_path, monkeypatch, method, extra):
    from safetensors.torch import load_file

    from upt.cli import main

    flowers = f"folder:{shared_path('data', 'flowers5')}"
    argv = ["train", "--json", "--method", method, "--dataset", flowers, "--backbone", "tiny", "--workers", "0",
            "--shots", "2", "--seed", "1", "--epochs", "3", "--batch-size", "4", *extra]
    assert main([*argv, "--out", str(tmp_path / "straight")]) == 0
    original = interrupt_epoch(monkeypatch, 2)
    assert main([*argv, "--out", str(tmp_path / "resumed")]) == 130
    monkeypatch.setattr(Trainer, "run_epoch", original)
    assert main([*argv, "--out", str(tmp_path / "resumed"), "--resume"]) == 0
    a, b = (load_file(tmp_path / r / "prompt.safetensors") for r in ("straight", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = (json.loads((tmp_path / r / "results.json").read_text()) for r in ("straight", "resumed"))
    assert ra["accuracy"] == rb["accuracy"]


# --- presets: the authors' configs per protocol -----------------------------------------------------
PRESETS = [
    ("kgcoop", "base2new", "dtd", {"optim.lr": 0.002, "optim.batch_size": 128, "optim.epochs": 100,
                                   "method_config.n_ctx": 4, "method_config.weight": 8.0, "classes": "base"}),
    ("kgcoop", "base2new", "imagenet", {"optim.epochs": 100}),
    ("kgcoop", "fewshot", "dtd", {"optim.batch_size": 32, "optim.epochs": 100}),  # the author's issue #4 reply
    ("promptsrc", "base2new", "dtd", {"optim.lr": 0.0025, "optim.batch_size": 4, "optim.epochs": 20,
                                      "method_config.depth_text": 9, "method_config.gpa_mean": 15.0,
                                      "method_config.gpa_std": 1.0, "method_config.text_loss_weight": 25.0}),
    ("promptsrc", "fewshot", "imagenet", {"optim.epochs": 50, "method_config.gpa_mean": 30.0,
                                          "method_config.gpa_std": 30.0}),
    ("promptsrc", "fewshot", "dtd", {"optim.epochs": 50, "method_config.gpa_mean": 45.0, "method_config.gpa_std": 5.0}),
    ("tip-adapter", "fewshot", "eurosat", {"method_config.search_scale": [12.0, 10.0], "method_config.init_alpha": 2.0}),
    ("tip-adapter-f", "fewshot", "eurosat", {"optim.epochs": 100, "method_config.search_scale": [12.0, 10.0]}),
    ("tip-adapter-f", "fewshot", "fgvc_aircraft", {"optim.epochs": 20, "method_config.search_scale": [30.0, 30.0],
                                                   "method_config.init_alpha": 5.0}),
    ("promptsrc", "dg", "imagenet", {"optim.epochs": 20, "method_config.depth_vision": 3, "method_config.gpa_mean": 6.0,
                                     "method_config.gpa_std": 10.0}),
    ("clip-lora", "fewshot", "dtd", {"optim.name": "adamw", "optim.lr": 0.0002, "optim.weight_decay": 0.01,
                                     "optim.batch_size": 32, "optim.warmup_epochs": 0, "method_config.rank": 2,
                                     "method_config.dropout": 0.25, "method_config.iterations_per_shot": 500}),
    ("tip-adapter", "fewshot", "imagenet", {"method_config.augment_views": 10, "method_config.search_scale": [7.0, 3.0],
                                            "method_config.search_step": [200, 20], "method_config.init_alpha": 1.17}),
    ("tip-adapter-f", "fewshot", "dtd", {"optim.name": "adamw", "optim.lr": 0.001, "optim.batch_size": 256,
                                         "optim.epochs": 20, "optim.warmup_epochs": 0,
                                         "data.train_transform": "random_resized_crop_0.5"}),
    ("tip-adapter", "fewshot", "oxford_flowers", {"method_config.search_scale": [50.0, 50.0],
                                                  "method_config.init_alpha": 10.0,
                                                  "data.train_transform": "random_resized_crop_0.5"}),
]


@pytest.mark.parametrize("method,protocol,dataset,want", PRESETS)
def test_presets_are_the_reference_configs(method, protocol, dataset, want):
    from upt.engine.config import fill_defaults, resolve

    values = fill_defaults(resolve({"method": method, "protocol": protocol, "dataset": dataset})).to_dict()

    def get(dotted):
        value = values
        for part in dotted.split("."):
            value = value[part]
        return value

    assert {k: get(k) for k in want} == want
