"""The command line end to end on real photos: train, eval, predict, resume, and the errors people hit."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers import interrupt_epoch, shared_path
from upt.cli import main
from upt.methods import REGISTRY

TINY = ["--backbone", "tiny", "--workers", "0", "--shots", "2", "--seed", "1"]
SMALL = {"clip-lora": ["--set", "method_config.iterations=4"]}  # MaPLe's, PromptSRC's depths: their presets' for tiny


@pytest.fixture(scope="module")
def flowers():
    return f"folder:{shared_path('data', 'flowers5')}"


def _train(out, flowers, method, *extra):
    return main(["train", "--json", "--method", method, "--dataset", flowers, *TINY, "--epochs", "2", "--batch-size", "4",
                 "--out", str(out), *SMALL.get(method, []), *extra])


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_train_eval_predict(tmp_path, flowers, capsys, method):
    run = tmp_path / "run"
    assert _train(run, flowers, method) == 0
    printed = _last_json(capsys)
    for f in ("prompt.safetensors", "upt.json", "config.yaml", "results.json", "log.txt"):
        assert (run / f).is_file(), f
    results = json.loads((run / "results.json").read_text())
    assert results["accuracy"] == pytest.approx(printed["accuracy"], abs=0.01)
    if REGISTRY[method].needs_training_data:
        assert results["fewshot"]["shots"] == 2 and len(results["fewshot"]["train"]) == 10
    else:  # zero-shot uses no labelled image
        assert results["fewshot"] is None and results["shots"] == 0
    assert results["timing"]["eval_images_per_s"] > 0 and results["timing"]["peak_memory_mb"] > 0
    per_class = results["per_class_accuracy"]
    names = ["daisy", "dandelion", "rose", "sunflower", "tulip"]
    assert [(c["index"], c["class"]) for c in per_class] == list(enumerate(names))  # every class is in the test split
    assert sum(c["n_images"] for c in per_class) == results["n_images"] == 90
    assert results["accuracy"] == pytest.approx(sum(c["accuracy"] * c["n_images"] for c in per_class) / 90)
    if REGISTRY[method].trains_by_gradient:
        assert len((run / "metrics.jsonl").read_text().splitlines()) == 2

    assert main(["eval", "--run", str(run), "--device", "cpu"]) == 0
    capsys.readouterr()
    again = json.loads(next((run / "eval").glob("*.json")).read_text())
    assert (again["precision"], again["device"]) == ("fp32", "cpu")  # what this evaluation ran with
    assert again["accuracy"] == results["accuracy"]
    assert again["per_class_accuracy"] == results["per_class_accuracy"]

    images = sorted((shared_path("data", "flowers5") / "rose").iterdir())[:2]
    assert main(["predict", "--run", str(run), "--topk", "5", *map(str, images)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["path"] for r in rows] == list(map(str, images)) and all(len(r["top"]) == 5 for r in rows)
    for r in rows:  # every class, best first, probabilities summing to one
        probs = [t["probability"] for t in r["top"]]
        assert sorted(t["class"] for t in r["top"]) == names and probs == sorted(probs, reverse=True)
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_python_predictor(tmp_path, flowers):
    from upt import Predictor

    run = tmp_path / "run"
    assert _train(run, flowers, "coop") == 0
    rows = list(Predictor(run, device="cpu").predict([shared_path("data", "flowers5", "tulip")], topk=2))
    assert len(rows) == len(list((shared_path("data", "flowers5") / "tulip").iterdir()))
    assert rows[0]["top"][0]["class"] in {"daisy", "dandelion", "rose", "sunflower", "tulip"}


def test_resume_after_interruption_matches_a_straight_run(tmp_path, flowers, monkeypatch):
    from upt.engine.train import Trainer

    straight = tmp_path / "straight"
    assert _train(straight, flowers, "upt", "--epochs", "3") == 0

    interrupted = tmp_path / "interrupted"
    original = interrupt_epoch(monkeypatch, 2)
    assert _train(interrupted, flowers, "upt", "--epochs", "3") == 130
    assert not (interrupted / "results.json").exists()
    monkeypatch.setattr(Trainer, "run_epoch", original)
    assert _train(interrupted, flowers, "upt", "--epochs", "3", "--resume") == 0

    a = json.loads((straight / "results.json").read_text())
    b = json.loads((interrupted / "results.json").read_text())
    assert a["accuracy"] == b["accuracy"] and a["per_class_accuracy"] == b["per_class_accuracy"]
    assert a["train"]["final_loss"] == b["train"]["final_loss"]
    pa, pb = load_file(straight / "prompt.safetensors"), load_file(interrupted / "prompt.safetensors")
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_errors_for_people(tmp_path, flowers, capsys):
    run = tmp_path / "run"
    cases = [
        (["train", "--method", "upp", *TINY, "--out", str(run)], "Unknown method 'upp'. Did you mean 'upt'?"),
        (["train", "--dataset", "folder:/no/such/place", *TINY, "--out", str(run)], "/no/such/place"),
        (["train", "--dataset", flowers, *TINY, "--out", str(tmp_path / "f" / "x")], "Cannot write to run folder"),
    ]
    (tmp_path / "f").write_text("a file where a folder should be")
    for argv, message in cases:
        assert main(argv) == 2
        assert message in capsys.readouterr().err

    assert _train(run, flowers, "linear-probe") == 0
    assert _train(run, flowers, "linear-probe") == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    assert _train(run, flowers, "linear-probe", "--overwrite") == 0
    assert main(["eval", "--run", str(run), "--backbone", "ViT-B-16"]) == 2
    assert "trained on backbone tiny" in capsys.readouterr().err
    cifar = f"folder:{shared_path('data', 'cifar10')}"
    assert main(["eval", "--run", str(run), "--dataset", cifar]) == 2
    assert "only knows the classes it was fitted on" in capsys.readouterr().err
    assert main(["eval", "--run", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_class_specific_context_cannot_change_class_count(tmp_path, flowers, capsys):
    run = tmp_path / "run"
    assert _train(run, flowers, "coop", "--set", "method_config.csc=true") == 0
    assert main(["eval", "--run", str(run), "--dataset", f"folder:{shared_path('data', 'cifar10')}"]) == 2
    assert "learned for 5 classes; it cannot serve 10" in capsys.readouterr().err


def test_non_finite_loss_stops_with_the_step(tmp_path, flowers, capsys):
    assert _train(tmp_path / "run", flowers, "coop", "--lr", "1e30", "--set", "optim.warmup_epochs=0") == 2
    err = capsys.readouterr().err
    assert "The loss became" in err and "at epoch 1, step" in err


def test_open_vocabulary_eval_on_another_dataset(tmp_path, flowers, capsys):
    run = tmp_path / "run"
    assert _train(run, flowers, "upt") == 0
    cifar = f"folder:{shared_path('data', 'cifar10')}"
    assert main(["eval", "--run", str(run), "--dataset", cifar, "--json"]) == 0
    r = _last_json(capsys)
    assert r["dataset"] == cifar and r["n_images"] > 0


def test_frozen_image_encoder_trains_on_cached_features_exactly(tmp_path, flowers, monkeypatch):
    """CoOp with a deterministic training transform: cached features give the images' own result."""
    from upt.engine import fit

    args = ["--set", "data.train_transform=center_crop", "--epochs", "3"]
    assert _train(tmp_path / "cached", flowers, "coop", *args) == 0
    assert "cached image features" in (tmp_path / "cached" / "log.txt").read_text()
    monkeypatch.setattr(fit, "DETERMINISTIC_TRANSFORMS", ())
    assert _train(tmp_path / "images", flowers, "coop", *args) == 0
    assert "cached image features" not in (tmp_path / "images" / "log.txt").read_text()
    pa = load_file(tmp_path / "cached" / "prompt.safetensors")
    pb = load_file(tmp_path / "images" / "prompt.safetensors")
    assert torch.allclose(pa["ctx"], pb["ctx"], atol=1e-5)


def test_feature_views_train_and_record(tmp_path, flowers):
    assert _train(tmp_path / "run", flowers, "coop", "--set", "data.feature_views=2") == 0
    assert "2 views per image" in (tmp_path / "run" / "log.txt").read_text()
    assert "feature_views: 2" in (tmp_path / "run" / "config.yaml").read_text()
