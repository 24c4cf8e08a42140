"""What the papers ran: activation by pretrained tag, Dassl's schedule, fp32 logits, per-protocol
presets, full-resolution crops, lpclip's C search and the reference's small details."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from helpers import shared_path
from upt.backbone import load_backbone
from upt.cli import main
from upt.data.base import Sample
from upt.engine.config import OptimConfig, resolve
from upt.engine.distributed import GlobalBatchSampler
from upt.engine.train import lr_at
from upt.errors import UptError
from upt.methods import REGISTRY, build_method

CLASSES = ["tabby cat", "golden retriever", "sea_lion", "airliner", "red fox"]
TINY_CONFIG = {"maple": {"depth": 2}, "promptsrc": {"depth_text": 2, "depth_vision": 2}}
TINY = ["--backbone", "tiny", "--workers", "0", "--seed", "1"]


@pytest.fixture(scope="module")
def flowers():
    return f"folder:{shared_path('data', 'flowers5')}"


def _train(out, dataset, method, *extra):
    return main(["train", "--method", method, "--dataset", dataset, *TINY, "--shots", "2", "--epochs", "2",
                 "--batch-size", "4", "--out", str(out), *extra])


# --- 1. QuickGELU ------------------------------------------------------------------------------
@pytest.mark.parametrize("name,tag,quick_gelu,widths", [
    ("ViT-B-16", "openai", True, (512, 768, 12, 12, 16, 512)),
    ("ViT-B-32", "openai", True, (512, 768, 12, 12, 32, 512)),
    ("ViT-L-14", "openai", True, (768, 1024, 12, 24, 14, 768)),
    ("ViT-B-16", "laion2b_s34b_b88k", False, (512, 768, 12, 12, 16, 512)),
])
def test_info_backbone_says_what_would_be_built(capsys, name, tag, quick_gelu, widths):
    assert main(["info", "backbone", name, "--pretrained", tag]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["quick_gelu"] is quick_gelu
    got = (info["text_width"], info["vision_width"], info["text_layers"], info["vision_layers"],
           info["patch_size"], info["embed_dim"])
    assert got == widths
    assert (info["architecture"], info["image_size"], info["preprocess"]["size"]) == ("vit", 224, 224)
    assert info["preprocess"]["interpolation"] == "bicubic"


def test_info_backbone_agrees_with_the_built_model(vit_b16):
    from upt.backbone import backbone_info

    info = backbone_info("ViT-B-16", None)
    built = vit_b16.describe()
    assert {k: info[k] for k in built if k != "preprocess"} == {k: v for k, v in built.items() if k != "preprocess"}
    assert info["preprocess"] == built["preprocess"]


@pytest.mark.parametrize("tag,quick_gelu", [("openai", True), ("laion2b_s34b_b88k", False)])
def test_a_pretrained_tag_builds_the_activation_its_weights_were_trained_with(monkeypatch, tag, quick_gelu):
    """open_clip >= 2.24 builds nn.GELU for `openai` unless told; the weights are skipped here (offline)."""
    import open_clip

    real = open_clip.create_model
    asked = {}

    def without_weights(name, pretrained=None, **kwargs):
        asked.update(kwargs, pretrained=pretrained)
        return real(name, pretrained=None, **kwargs)

    monkeypatch.setattr(open_clip, "create_model", without_weights)
    monkeypatch.setattr("upt.backbone.load.require_reachable_weights", lambda *a: None)  # offline here
    backbone = load_backbone("ViT-B-32", tag)
    assert asked["pretrained"] == tag and asked["force_quick_gelu"] is quick_gelu
    assert backbone.quick_gelu is quick_gelu and backbone.describe()["quick_gelu"] is quick_gelu
    mlp = backbone.model.transformer.resblocks[0].mlp
    x = torch.linspace(-3, 3, 7)
    want = x * torch.sigmoid(1.702 * x) if quick_gelu else torch.nn.functional.gelu(x)
    assert torch.equal(mlp.gelu(x), want)


def test_run_records_its_activation_loads_it_and_resume_refuses_another(tmp_path, flowers, capsys):
    from upt.engine.rundir import load_run

    run = tmp_path / "run"
    assert _train(run, flowers, "coop") == 0
    meta = json.loads((run / "upt.json").read_text())
    assert meta["backbone"]["quick_gelu"] is True
    assert yaml.safe_load((run / "config.yaml").read_text())["quick_gelu"] is True
    capsys.readouterr()
    assert _train(run, flowers, "coop", "--resume", "--set", "quick_gelu=false") == 2
    assert "holds a different run (quick_gelu: True -> False)" in capsys.readouterr().err
    assert load_run(run, "cpu")[0].backbone.quick_gelu is True
    meta["backbone"]["quick_gelu"] = False  # a run trained with GELU is rebuilt with GELU
    (run / "upt.json").write_text(json.dumps(meta))
    assert load_run(run, "cpu")[0].backbone.quick_gelu is False
    del meta["backbone"]["quick_gelu"]  # recorded before the activation was: the model config's own
    (run / "upt.json").write_text(json.dumps(meta))
    assert load_run(run, "cpu")[0].backbone.quick_gelu is True


def test_a_backbone_with_another_activation_is_refused(tiny, tmp_path):
    from upt.engine.rundir import check_same_backbone

    recorded = {**tiny.describe(), "quick_gelu": False}
    with pytest.raises(UptError, match="with GELU activations but the backbone loaded here uses QuickGELU"):
        check_same_backbone(recorded, tiny, tmp_path)


# --- 2. Learning-rate schedule -----------------------------------------------------------------
@pytest.mark.parametrize("epochs", [5, 10, 50, 200])
def test_lr_schedule_is_dassls_constant_warmup_with_recount(epochs):
    optim = OptimConfig(lr=0.002, warmup_epochs=1, warmup_lr=1e-5)
    want = [1e-5] + [0.002 * 0.5 * (1 + math.cos(math.pi * (e - 1) / epochs)) for e in range(1, epochs)]
    got = [lr_at(e, optim, epochs) for e in range(epochs)]
    assert got == pytest.approx(want, rel=1e-12, abs=0)
    assert got[:2] == [1e-5, 0.002]  # the first epoch after warm-up runs at the full lr


def test_five_epoch_run_records_warmup_then_full_lr(tmp_path, flowers):
    run = tmp_path / "run"
    assert _train(run, flowers, "coop", "--epochs", "5", "--lr", "0.002") == 0
    lrs = [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert lrs[:2] == [1e-5, 0.002]
    assert lrs == pytest.approx([1e-5, 0.002, 0.0018090169943749475, 0.0013090169943749475, 0.0006909830056250527])


# --- 3. Logits in fp32 -------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_logits_are_fp32_under_autocast(tiny, name):
    torch.manual_seed(0)
    m = build_method(name, tiny, CLASSES, config=TINY_CONFIG.get(name, {})).eval()
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    if name == "linear-probe":
        m.weight.normal_()
        m.bias.normal_()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = m(images)
        assert logits.dtype == torch.float32
        if m.image_dependent_text:
            return
        img = m.encode_image(images)
        txt = None if name == "linear-probe" else m.encode_text()
        got = m.logits(img, txt)
    if name == "linear-probe":
        want = img.double() @ m.weight.double().t() + m.bias.double()
    else:
        f = torch.nn.functional.normalize(img.double(), dim=-1)  # Tip-Adapter's image features are raw
        want = tiny.logit_scale.double() * f @ txt.double().t()
    assert got.dtype == torch.float32
    assert (got.double() - want).abs().max().item() <= 1e-5


# --- 4. Presets per (method, protocol) ----------------------------------------------------------
REFERENCE = [  # (method, protocol, dataset) -> what the authors' config and script run
    ("coop", "fewshot", "dtd", {"method_config.n_ctx": 16, "method_config.ctx_init": "", "optim.lr": 0.002,
                                "optim.batch_size": 32, "optim.epochs": 200}),
    ("coop", "base2new", "dtd", {"method_config.n_ctx": 4, "method_config.ctx_init": "a photo of a",
                                 "optim.batch_size": 32, "optim.epochs": 200, "classes": "base"}),
    ("coop", "base2new", "imagenet", {"method_config.ctx_init": "a photo of a", "optim.epochs": 50}),
    ("coop", "dg", "imagenet", {"method_config.n_ctx": 4, "method_config.ctx_init": "a photo of a",
                                "optim.epochs": 50, "optim.batch_size": 32}),
    ("coop", "cross-dataset", "imagenet", {"method_config.ctx_init": "a photo of a", "optim.epochs": 50}),
    ("cocoop", "base2new", "dtd", {"optim.batch_size": 1, "optim.epochs": 10, "optim.lr": 0.002,
                                   "method_config.ctx_init": "a photo of a"}),
    ("cocoop", "dg", "imagenet", {"optim.batch_size": 1, "optim.epochs": 10}),
    ("maple", "base2new", "dtd", {"optim.lr": 0.0035, "optim.epochs": 5, "optim.batch_size": 4,
                                  "method_config.depth": 9, "method_config.n_ctx": 2}),
    ("maple", "dg", "imagenet", {"optim.lr": 0.0026, "optim.epochs": 2, "optim.batch_size": 4,
                                 "method_config.depth": 3, "method_config.n_ctx": 2}),
    ("maple", "cross-dataset", "imagenet", {"optim.lr": 0.0026, "optim.epochs": 2, "method_config.depth": 3}),
    ("upt", "base2new", "dtd", {"optim.lr": 0.002, "optim.batch_size": 32, "optim.epochs": 200,
                                "method_config.n_t": 4, "method_config.n_v": 4}),
    ("upt", "fewshot", "imagenet", {"optim.epochs": 50}),
    ("linear-probe", "fewshot", "dtd", {"method_config.max_iter": 1000, "method_config.search_steps": 8}),
]


def _get(cfg, dotted):
    value = cfg.to_dict()
    for part in dotted.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("method,protocol,dataset,want", REFERENCE)
def test_presets_are_the_reference_configs(method, protocol, dataset, want):
    from upt.engine.config import fill_defaults

    cfg = fill_defaults(resolve({"method": method, "protocol": protocol, "dataset": dataset}))
    assert {k: _get(cfg, k) for k in want} == want


def test_flags_override_the_protocol_presets():
    cfg = resolve({"method": "maple", "protocol": "dg", "dataset": "imagenet", "optim": {"epochs": 3}},
                  [], ["method_config.depth=5"])
    assert (cfg.optim.epochs, cfg.optim.lr, cfg.method_config["depth"]) == (3, 0.0026, 5)


@pytest.mark.parametrize("argv,lines", [
    (["--method", "maple", "--protocol", "dg", "--dataset", "imagenet"],
     ["  lr: 0.0026", "  epochs: 2", "  depth: 3", "quick_gelu: true", "precision: fp32", "device: cpu"]),
    (["--method", "coop", "--protocol", "base2new", "--dataset", "shapes"],
     ["  n_ctx: 4", "  ctx_init: a photo of a", "classes: base", "  epochs: 200"]),
])
def test_print_config_shows_everything_and_writes_nothing(tmp_path, capsys, argv, lines):
    assert main(["train", *argv, "--out", str(tmp_path / "run"), "--print-config"]) == 0
    text = capsys.readouterr().out
    for line in lines:
        assert line in text.splitlines()
    assert not (tmp_path / "run").exists()


def test_config_yaml_is_the_printed_config(tmp_path, flowers, capsys):
    run = tmp_path / "run"
    args = ["--set", "compute.text_chunk_size=3"]
    assert main(["train", "--method", "upt", "--dataset", flowers, *TINY, "--shots", "2", "--epochs", "2",
                 "--batch-size", "4", "--out", str(run), *args, "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert _train(run, flowers, "upt", *args) == 0
    assert (run / "config.yaml").read_text() == printed
    cfg = yaml.safe_load(printed)
    assert cfg["method_config"] == {"n_t": 4, "n_v": 4, "token_mixing": "paper", "visual_prompt": "shallow",
                                    "depth": None, "ffn_mult": 1.0, "dropout": 0.1}


# --- 5. Full-resolution crops ------------------------------------------------------------------
def test_training_crops_come_from_the_full_resolution_image(tmp_path, tiny):
    from upt.engine.loaders import image_dataset

    path = tmp_path / "big.png"
    Image.new("RGB", (640, 480), (200, 30, 30)).save(path)
    samples = [Sample(str(path), 0)]
    full = image_dataset(samples, tiny.preprocess, "random_resized_crop", True, cache=True)
    assert full.cache and full.image(0).size == (640, 480)
    shrunk = image_dataset(samples, tiny.preprocess, "random_resized_crop", True, cache=True, short_side=64)
    assert shrunk.image(0).size == (85, 64)
    assert resolve({}).data.cache_short_side is None


# --- 6. Linear probe as lpclip ------------------------------------------------------------------
def _lpclip(score, steps=8):
    """lpclip/linear_probe.py's search, transcribed: the grid's first best, then the refinement."""
    grid = [1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6]
    accs = [score(c) for c in grid]
    peak = grid[accs.index(max(accs))]
    c_left, c_right = 0.1 * peak, 10 * peak
    c_final = peak
    for _ in range(steps):
        if score(c_left) < score(c_right):
            c_final = c_right
            c_left = 0.5 * (math.log10(c_right) + math.log10(c_left))
            c_right = math.log10(c_right)
        else:
            c_final = c_left
            c_right = 0.5 * (math.log10(c_right) + math.log10(c_left))
            c_left = math.log10(c_left)
        c_left, c_right = 10 ** c_left, 10 ** c_right
    return c_final


@pytest.mark.parametrize("best", [2.3, -3.7, 0.0, 5.5])
def test_c_search_is_lpclips(best):
    from upt.methods.linear_probe import search_c

    def score(c):
        return -round(abs(math.log10(c) - best), 9)

    c, _ = search_c(score, (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6), 8)
    assert c == pytest.approx(_lpclip(score), rel=1e-9)
    assert abs(math.log10(c) - best) < 0.1


@pytest.mark.parametrize("best", [9.0, -10.0])
def test_c_search_is_not_capped_by_the_grid(best):
    from upt.methods.linear_probe import search_c

    c, grid = search_c(lambda c: -abs(math.log10(c) - best), (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6), 8)
    assert abs(math.log10(c) - best) < 0.1
    assert max(grid) >= 1e8 if best > 0 else min(grid) <= 1e-8


def test_linear_probe_fits_sklearns_objective_and_reads_raw_features_when_asked(tiny):
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(5, tiny.embed_dim, generator=g)
    y = torch.arange(5).repeat(8)
    x = torch.nn.functional.normalize(centers[y] + 2 * torch.randn(len(y), tiny.embed_dim, generator=g), dim=-1)
    m = build_method("linear-probe", tiny, CLASSES)
    fit = m.fit_features((x[:25], y[:25]), (x[25:], y[25:]))
    c = fit["linear_probe_c"]
    w, b = m.weight.clone().requires_grad_(True), m.bias.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(x[:25] @ w.t() + b, y[:25], reduction="sum") + (w * w).sum() / (2 * c)
    loss.backward()
    assert w.grad.abs().max().item() < 1e-3 * max(1.0, c) ** 0.5 and b.grad.abs().max().item() < 1e-3
    images = torch.randn(2, 3, 32, 32, generator=g)
    raw = build_method("linear-probe", tiny, CLASSES, config={"normalize": False})
    with torch.no_grad():
        assert torch.allclose(raw.encode_image(images), tiny.vision.encode_images(images).float())
        assert torch.allclose(m.encode_image(images).norm(dim=-1), torch.ones(2))


# --- 7. The smaller ones -----------------------------------------------------------------------
@pytest.mark.parametrize("n,batch,sizes", [(10, 4, [4, 4]), (8, 4, [4, 4]), (3, 4, [3]), (4, 4, [4])])
def test_training_batches_drop_the_last_incomplete_one_as_dassl(n, batch, sizes):
    sampler = GlobalBatchSampler(n, batch)
    assert [len(b) for b in sampler] == sizes and len(sampler) == len(sizes)


def test_maple_deeper_projections_start_as_identical_copies(vit_b16):
    torch.manual_seed(0)
    m = build_method("maple", vit_b16, CLASSES, config={"depth": 3})
    assert torch.equal(m.proj[1].weight, m.proj[2].weight) and torch.equal(m.proj[1].bias, m.proj[2].bias)
    assert not torch.equal(m.proj[0].weight, m.proj[1].weight)
    m.proj[1].weight.data.add_(1)  # copies, not one shared module
    assert not torch.equal(m.proj[1].weight, m.proj[2].weight)


@pytest.mark.parametrize("mixing", ["reference", "paper"])
def test_upt_reference_runs_the_prompt_network_once_per_modality_in_training(tiny, mixing):
    torch.manual_seed(0)
    m = build_method("upt", tiny, CLASSES, config={"token_mixing": mixing}).train()
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)
    got = m(images)
    torch.manual_seed(5)
    if mixing == "reference":  # image side first, then text: two dropout draws
        visual = m.net()[1]
        text = m.net()[0]
    else:
        text, visual = m.net()
    want = m.logits(m.encode_image(images, visual), m._encode_text(text))
    assert torch.equal(got, want)


def test_coop_class_specific_context_with_an_init_phrase_is_refused(tiny):
    with pytest.raises(UptError, match="ignores class-specific context when an init phrase is set"):
        build_method("coop", tiny, CLASSES, config={"csc": True, "ctx_init": "a photo of a"})


def test_zeroshot_ensemble_leaves_the_template_out_on_imagenet_only(tiny):
    from upt.data import get_spec
    from upt.methods.text_prompt import ENSEMBLE_TEMPLATES, zeroshot_classifier
    from upt.methods.zeroshot import resolve_templates

    assert not get_spec("imagenet").ensemble_with_template
    assert all(get_spec(n).ensemble_with_template for n in ("imagenet_sketch", "imagenetv2", "dtd", "eurosat"))
    template = "a photo of a {}."
    assert resolve_templates("dataset+ensemble", template, False) == list(ENSEMBLE_TEMPLATES)
    assert resolve_templates("dataset+ensemble", template, True) == [*ENSEMBLE_TEMPLATES, template]
    m = build_method("zeroshot", tiny, CLASSES, template, {"templates": "dataset+ensemble"}, ensemble_with_template=False)
    assert torch.equal(m.encode_text(), zeroshot_classifier(tiny, CLASSES, ENSEMBLE_TEMPLATES))
    m.set_classnames(CLASSES, template, True)
    assert torch.equal(m.encode_text(), zeroshot_classifier(tiny, CLASSES, [*ENSEMBLE_TEMPLATES, template]))


# --- Also: exactness switches ------------------------------------------------------------------
def test_exactness_fast_paths_have_config_switches(tmp_path, flowers, monkeypatch):
    from upt.methods.base import PromptMethod

    seen = []
    original = PromptMethod.configure_compute

    def record(self, **kwargs):
        seen.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(PromptMethod, "configure_compute", record)
    assert _train(tmp_path / "fast", flowers, "coop") == 0
    off = ["--set", "compute.truncate_text=false", "--set", "compute.share_prefix=false"]
    assert _train(tmp_path / "slow", flowers, "coop", *off) == 0
    assert [(s["truncate_text"], s["share_prefix"]) for s in seen] == [(True, True), (False, False)]
    fast, slow = load_file(tmp_path / "fast" / "prompt.safetensors"), load_file(tmp_path / "slow" / "prompt.safetensors")
    assert torch.allclose(fast["ctx"], slow["ctx"], atol=1e-5)
