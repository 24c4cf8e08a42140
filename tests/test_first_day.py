"""A researcher's first day: progress in logs, runs that train, fast offline failures, zero-shot that
reads only what it uses, and base-to-new recorded as such."""

from __future__ import annotations

import json
import logging

import pytest

from helpers import shared_path
from upt.cli import main
from upt.engine.config import resolve
from upt.engine.progress import Progress
from upt.errors import UptError

TINY = ["--backbone", "tiny", "--workers", "0", "--seed", "1"]


@pytest.fixture(scope="module")
def flowers():
    return f"folder:{shared_path('data', 'flowers5')}"


# --- 1. progress -------------------------------------------------------------------------------
def test_progress_logs_lines_when_not_on_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="upt.engine.progress")
    with Progress(100, "eval", terminal=False, every_s=0) as p:
        p.update(40, loss=1.5)
        p.update(60)  # the end: no line, the caller reports the pass
    lines = [r.getMessage() for r in caplog.records if r.name == "upt.engine.progress"]
    assert len(lines) == 1
    assert lines[0].startswith("eval: 40/100 images · ") and " img/s · loss 1.5000 · ETA " in lines[0]


def test_progress_bar_counts_real_images_against_the_epochs_total(tmp_path, flowers, monkeypatch):
    from upt.engine import fit, run

    seen = []

    class Recording(Progress):
        def __init__(self, total, desc, **kwargs):
            super().__init__(total, desc, terminal=False, **kwargs)
            seen.append(self)

    monkeypatch.setattr(run, "Progress", Recording)  # the evaluation's bar
    monkeypatch.setattr(fit, "Progress", Recording)  # the epochs' bars
    # 10 images, batches of 4: Dassl drops the incomplete last batch, so 8 per epoch
    assert main(["train", "--method", "coop", "--dataset", flowers, *TINY, "--shots", "2", "--epochs", "2",
                 "--batch-size", "4", "--out", str(tmp_path / "run")]) == 0
    epochs = [p for p in seen if p.desc.startswith("epoch")]
    assert [(p.desc, p.total, p.done) for p in epochs] == [("epoch 1/2", 8, 8), ("epoch 2/2", 8, 8)]
    evals = [p for p in seen if p.desc == "eval"]
    assert [(p.total, p.done) for p in evals] == [(90, 90)]


# --- 2. epochs that only warm up ------------------------------------------------------------------
def test_warmup_only_runs_are_warned_about(tmp_path, flowers, caplog):
    caplog.set_level(logging.WARNING)
    assert main(["train", "--method", "coop", "--dataset", flowers, *TINY, "--shots", "1", "--epochs", "1",
                 "--out", str(tmp_path / "run")]) == 0
    assert any("all 1 epoch(s) are warm-up epochs" in r.getMessage() for r in caplog.records)


def test_the_smoke_grid_trains_past_the_warmup():
    from upt.sweep import load_grid

    grid = load_grid("grids/smoke")
    cfg = resolve({"backbone": "tiny", "optim": {"epochs": grid.epochs}})
    assert cfg.optim.epochs > cfg.optim.warmup_epochs


# --- 3. offline ------------------------------------------------------------------------------
@pytest.mark.parametrize("offline_env", [True, False])
def test_an_offline_machine_fails_in_seconds_with_what_to_do(tmp_path, monkeypatch, capsys, offline_env):
    import socket

    import open_clip

    def never(*a, **k):
        raise AssertionError("open_clip would now spend a minute in download retries")

    monkeypatch.setattr(open_clip, "create_model", never)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    if offline_env:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

        def refused(*a, **k):
            raise OSError("Network is unreachable")
        monkeypatch.setattr(socket, "create_connection", refused)
    assert main(["train", "--dataset", "shapes", "--data-root", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ".." not in err
    why = "HF_HUB_OFFLINE is set" if offline_env else "huggingface.co cannot be reached (no internet?)"
    assert err == (f"upt: error: The weights 'openai' of ViT-B-16 are not in the local cache and {why}. Offline, use "
                   "--backbone tiny to try the pipeline, or pass --pretrained /path/to/weights-file; or download them "
                   "once on a machine with internet (the Hugging Face cache is then reused).")
    assert not (tmp_path / "run").exists() and not (tmp_path / "shapes").exists()  # before the data


# --- 5. zero-shot reads only the evaluation split ----------------------------------------------------
def test_zeroshot_reads_only_the_test_split_and_records_zero_shots(tmp_path, monkeypatch, flowers):
    from upt.engine import loaders

    encoded = []
    real = loaders.encode_all
    monkeypatch.setattr(loaders, "encode_all", lambda m, loader, p: encoded.append(len(loader.dataset)) or
                        real(m, loader, p))
    run = tmp_path / "run"
    assert main(["train", "--method", "zeroshot", "--dataset", flowers, *TINY, "--shots", "16",
                 "--out", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert encoded == [] and results["shots"] == 0 and results["fewshot"] is None
    assert results["train"] == {} and results["n_images"] == 90


def test_zeroshot_on_imagenet_needs_no_training_images(tmp_path):
    from PIL import Image

    from upt.data import load_dataset

    inet = tmp_path / "imagenet"
    wnids = ["n01440764", "n01443537"]
    (inet / "classnames.txt").parent.mkdir(parents=True)
    (inet / "classnames.txt").write_text("n01440764 tench\nn01443537 goldfish\n")
    for i, w in enumerate(wnids):
        (inet / "images" / "val" / w).mkdir(parents=True)
        Image.new("RGB", (40, 40), (200 * i, 30, 30)).save(inet / "images" / "val" / w / "a.jpg")
    with pytest.raises(UptError, match="images/train not found"):
        load_dataset("imagenet", tmp_path)
    splits = load_dataset("imagenet", tmp_path, train=False)
    assert (len(splits.train), len(splits.test), splits.classnames) == (0, 2, ["tench", "goldfish"])


# --- 6. base classes are the base-to-new protocol -------------------------------------------------
def test_training_on_base_classes_is_recorded_as_base_to_new(tmp_path, flowers):
    assert resolve({"classes": "base"}).protocol == "base2new"
    assert resolve({"classes": "base", "protocol": "mine"}).protocol == "mine"
    assert resolve({}).protocol == "fewshot"
    run = tmp_path / "run"
    assert main(["train", "--method", "coop", "--dataset", flowers, *TINY, "--shots", "1", "--epochs", "2",
                 "--classes", "base", "--out", str(run)]) == 0
    assert json.loads((run / "results.json").read_text())["protocol"] == "base2new"


def test_a_base_to_new_split_with_a_one_class_half_is_warned_about(tmp_path, caplog):
    from PIL import Image

    from upt.data import base_new_split, load_dataset

    for name in ("cat", "dog", "fox"):
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (20, 20), (60 * i, 10, 10)).save(tmp_path / "d" / name / f"{i}.png")
    splits = load_dataset(f"folder:{tmp_path / 'd'}")
    caplog.set_level(logging.WARNING)
    base_new_split(splits, "new")
    assert any("into 2 base and 1 new" in r.getMessage() for r in caplog.records)
