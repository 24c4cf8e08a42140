"""The toy CLIP: a pure-function world, a deterministic pretraining recipe, packaged weights that
know the world, and a file from ``upt pretrain-toy`` that loads as the backbone."""

from __future__ import annotations

import random

import pytest
import torch

from upt.backbone import load_backbone
from upt.cli import main
from upt.errors import UptError
from upt.toy import pretrain as P
from upt.toy.world import ATTRIBUTES, caption, render, scene_at

SMALL = {**P.RECIPE, "images": 64, "batch_size": 16, "steps": 3, "warmup_steps": 1}


def test_the_world_is_a_pure_function_of_seed_and_index():
    a, b = scene_at(3, 17), scene_at(3, 17)
    assert a == b and render(a).tobytes() == render(b).tobytes()
    assert scene_at(3, 18) != a
    held = frozenset({(a.shape, a.colour)})
    assert all((s.shape, s.colour) not in held for s in (scene_at(3, i, held_out=held) for i in range(50)))
    text = caption(a, random.Random(0))
    assert a.shape in text and text == caption(a, random.Random(0))
    assert scene_at(4, 0, fixed={"background": "dotted"}).background == "dotted"
    assert len(ATTRIBUTES) == 6


def test_pretraining_is_deterministic_and_stores_what_it_trained():
    model_a, losses_a = P.pretrain(SMALL)
    model_b, losses_b = P.pretrain(SMALL)
    assert losses_a == losses_b and len(losses_a) == 3
    stored_a, stored_b = P.stored_tensors(model_a), P.stored_tensors(model_b)
    assert stored_a.keys() == stored_b.keys() and all(torch.equal(stored_a[k], stored_b[k]) for k in stored_a)
    fresh = P.build_model(SMALL["init_seed"])
    state = P.restore_state(fresh, stored_a)
    trained = model_a.state_dict()
    for k, v in state.items():  # fp16 storage: within fp16 rounding of what was trained
        assert torch.allclose(v, trained[k].float(), rtol=1e-3, atol=1e-3), k
    # the token rows the captions never use were never trained: stored nowhere, equal to the init
    unused = torch.ones(fresh.token_embedding.weight.shape[0], dtype=torch.bool)
    unused[stored_a["token_embedding.ids"].long()] = False
    assert torch.equal(trained["token_embedding.weight"][unused], fresh.token_embedding.weight[unused])


def test_packaged_weights_know_the_toy_world():
    """Zero-shot on 240 fresh scenes: shapes at 6 classes, colours at 8, well above chance."""
    from upt.data import build_transform
    from upt.methods.base import l2
    from upt.methods.text_prompt import zeroshot_classifier
    from upt.toy.world import COLOURS, SHAPES

    toy = load_backbone("toy", "upt")
    assert toy.describe()["quick_gelu"] is True and toy.preprocess.size == 32
    tf = build_transform(toy.preprocess, train=False)
    scenes = [scene_at(1234, i) for i in range(240)]
    with torch.no_grad():
        feats = l2(toy.vision.encode_images(torch.stack([tf(render(s)) for s in scenes])))
    for attr, names, template, floor in (("shape", SHAPES, "a photo of a {}.", 0.5),
                                         ("colour", list(COLOURS), "a {} shape.", 0.8)):
        classifier = zeroshot_classifier(toy, names, [template])
        truth = torch.tensor([list(names).index(getattr(s, attr)) for s in scenes])
        accuracy = ((feats @ classifier.t()).argmax(1) == truth).float().mean().item()
        assert accuracy >= floor, (attr, accuracy)  # chance: 1/6 and 1/8


def test_pretrain_toy_writes_weights_that_load_as_the_backbone(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(P, "RECIPE", SMALL)
    out = tmp_path / "toy.safetensors"
    assert main(["pretrain-toy", "--out", str(out), "--steps", "2"]) == 0
    assert f"-> {out}" in capsys.readouterr().out
    mine = load_backbone("toy", str(out))
    packaged = load_backbone("toy", "upt")
    assert not torch.equal(mine.model.visual.conv1.weight, packaged.model.visual.conv1.weight)
    assert mine.describe() == {**packaged.describe(), "pretrained": str(out)}
    with pytest.raises(UptError, match="is built in and its weights are --pretrained upt or a file"):
        load_backbone("toy", "openai")


# --- learning: every method improves on zero-shot on a held-out toy task -------------------------
# Backgrounds of new scenes (seed 11; pretraining drew seed 0), 4 classes, 16 shots, 30 epochs,
# deterministic crops (a random-resized crop of a 32-pixel image keeps too little of it to learn).
# Measured: zero-shot 38.9 %, VPT 45.8 %, UPT 86.1 %, linear probe 87.5 %, MaPLe 90.3 %, CoCoOp 91.7 %,
# CoOp 93.1 %. VPT tunes the image side only, and these class names are close in text space.
MARGIN = {"linear-probe": 30.0, "coop": 30.0, "cocoop": 30.0, "maple": 30.0, "upt": 30.0, "vpt": 4.0}


@pytest.fixture(scope="module")
def backgrounds(tmp_path_factory):
    from upt.toy.tasks import make_task

    return f"folder:{make_task(tmp_path_factory.mktemp('toy') / 'backgrounds', 'backgrounds')}"


def _learn(out, dataset, method):
    assert main(["train", "--method", method, "--dataset", dataset, "--backbone", "toy", "--shots", "16",
                 "--epochs", "30", "--workers", "0", "--set", "data.train_transform=center_crop",
                 "--json", "--out", str(out)]) == 0  # MaPLe's depth: its preset's for toy (2)
    import json

    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def zero_shot(backgrounds, tmp_path_factory):
    return _learn(tmp_path_factory.mktemp("zs") / "run", backgrounds, "zeroshot")["accuracy"]


def test_zero_shot_beats_chance_on_a_held_out_task(zero_shot):
    assert zero_shot >= 25.0 + 10.0  # 4 classes


@pytest.mark.parametrize("method", sorted(MARGIN))
def test_every_method_learns_beyond_zero_shot(backgrounds, zero_shot, tmp_path, method):
    import json

    results = _learn(tmp_path / "run", backgrounds, method)
    assert results["accuracy"] >= zero_shot + MARGIN[method], (method, results["accuracy"], zero_shot)
    if method != "linear-probe":
        losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        assert len(losses) == 30 and losses[-1] < 0.8 * losses[1]  # the loss goes down after the warm-up epoch
