"""Guards around a run: typed overrides, resume of the same run only, one-file atomic checkpoints,
finite parameters, failed runs that do not block their rerun, images checked before training, and
sweeps that compare whole configs."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from helpers import shared_path
from upt.cli import main
from upt.engine.config import resolve
from upt.errors import UptError

TINY = ["--backbone", "tiny", "--workers", "0", "--shots", "2", "--seed", "1", "--batch-size", "4"]


@pytest.fixture(scope="module")
def flowers():
    return f"folder:{shared_path('data', 'flowers5')}"


def _train(out, dataset, *extra, method="coop", epochs="2"):
    return main(["train", "--method", method, "--dataset", dataset, *TINY, "--epochs", epochs, "--out", str(out),
                 *extra])


# --- 7, 15: every --set value checked against its field ---------------------------------------
@pytest.mark.parametrize("override,key,value", [
    ("optim.lr=1e-3", "optim.lr", 0.001), ("optim.lr=.5", "optim.lr", 0.5), ("optim.epochs=3", "optim.epochs", 3),
    ("optim.epochs=4.0", "optim.epochs", 4), ("data.cache_images=false", "data.cache_images", False),
    ("compute.text_chunk_size=none", "compute.text_chunk_size", None), ("seed=7", "seed", 7),
    ("quick_gelu=true", "quick_gelu", True),
])
def test_overrides_are_converted_to_their_fields_type(override, key, value):
    cfg = resolve({"backbone": "tiny"}, [], [override]).to_dict()
    section, _, name = key.rpartition(".")
    got = cfg[section][name] if section else cfg[name]
    assert got == value and type(got) is type(value)


def test_list_values_reach_method_configs():
    cfg = resolve({"backbone": "tiny", "method": "linear-probe"}, [], ["method_config.c_grid=[1, 1e-2, 100]"])
    from upt.methods import get_method_class, make_config

    assert make_config(get_method_class("linear-probe"), cfg.method_config).c_grid == (1.0, 0.01, 100.0)


@pytest.mark.parametrize("override,message", [
    ("optim.lr=abc", "optim.lr must be a number; got 'abc'."),
    ("optim.batch_size=abc", "optim.batch_size must be a whole number; got 'abc'."),
    ("seed=abc", "seed must be a whole number; got 'abc'."),
    ("optim.epochs=2.5", "optim.epochs must be a whole number; got 2.5."),
    ("optim.lr=.inf", "optim.lr must be a finite number; got inf."),
    ("optim.lr=.nan", "optim.lr must be a finite number; got nan."),
    ("seed=-1", "seed must be between 0 and 2147483647, got -1."),
    ("seed=99999999999999999999", "seed must be between 0 and 2147483647, got 99999999999999999999."),
    ("data.cache_images=maybe", "data.cache_images must be true or false; got 'maybe'."),
    ("method_config.n_ctx=1.5", "method_config.n_ctx must be a whole number; got 1.5."),
    ("optim.max_steps=0", "max_steps must be positive, got 0."),
])
def test_bad_values_are_refused_by_name_before_anything_is_written(tmp_path, flowers, capsys, override, message):
    out = tmp_path / "run"
    assert _train(out, flowers, "--set", override) == 2
    assert capsys.readouterr().err.strip() == f"upt: error: {message}"
    assert not out.exists()


# --- 8: --resume continues only the same run ---------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory, flowers):
    run = tmp_path_factory.mktemp("finished") / "run"
    assert _train(run, flowers) == 0
    return run


@pytest.mark.parametrize("extra,keys", [
    (["--method", "upt"], "method: 'coop' -> 'upt'"),
    (["--shots", "4"], "shots: 2 -> 4"),
    (["--seed", "2"], "seed: 1 -> 2"),
    (["--lr", "0.01"], "optim.lr: 0.002 -> 0.01"),
    (["--set", "method_config.n_ctx=8"], "method_config.n_ctx: 16 -> 8"),
])
def test_resume_refuses_another_run_and_touches_nothing(finished, flowers, capsys, extra, keys):
    before = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["train", "--method", "coop", "--dataset", flowers, *TINY, "--epochs", "2", "--out", str(finished),
                 *extra, "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"holds a different run ({keys}" in err and "--resume continues only the same run" in err
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()} == before


def test_resume_allows_cost_only_changes(tmp_path, flowers):
    run = tmp_path / "run"
    assert _train(run, flowers) == 0
    assert _train(run, flowers, "--resume", "--set", "data.eval_batch_size=7",
                  "--set", "compute.text_chunk_size=2") == 0


# --- 9: one atomic checkpoint ------------------------------------------------------------------
def test_checkpoint_is_one_file_and_a_crash_while_writing_keeps_the_previous(tmp_path, flowers, monkeypatch):
    from upt.engine import checkpoint, resume

    straight = tmp_path / "straight"
    assert _train(straight, flowers, epochs="3") == 0
    assert sorted(p.name for p in (straight / "checkpoint").iterdir()) == ["state.safetensors"]

    run = tmp_path / "run"
    real = checkpoint._write_file
    calls = {"n": 0}

    def dies_writing_epoch_two(path, data):
        real(path, data)
        if "state.safetensors" in str(path):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt  # killed after the bytes, before the rename
    monkeypatch.setattr(checkpoint, "_write_file", dies_writing_epoch_two)
    assert _train(run, flowers, epochs="3") == 130
    monkeypatch.setattr(checkpoint, "_write_file", real)
    tensors, state = resume.load_checkpoint(run)
    assert state["epoch"] == 1 and sorted(p.name for p in (run / "checkpoint").iterdir()) == ["state.safetensors"]
    assert _train(run, flowers, "--resume", epochs="3") == 0
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    a, b = load_file(straight / "prompt.safetensors"), load_file(run / "prompt.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_damaged_checkpoint_is_one_sentence(tmp_path, flowers, capsys):
    run = tmp_path / "run"
    assert _train(run, flowers) == 0
    (run / "checkpoint" / "state.safetensors").write_bytes(b"\x00" * 10)
    capsys.readouterr()
    assert _train(run, flowers, "--resume") == 2
    err = capsys.readouterr().err
    assert "state.safetensors is not a readable safetensors file" in err and len(err.strip().splitlines()) == 1


# --- 11: never write non-finite parameters -----------------------------------------------------
def test_non_finite_parameters_stop_before_the_checkpoint(tmp_path, flowers, capsys, monkeypatch):
    from upt.engine import resume

    real_step = torch.optim.SGD.step
    steps = {"n": 0}

    def poisons_the_second_epoch(self, *a, **k):
        out = real_step(self, *a, **k)
        steps["n"] += 1
        if steps["n"] == 4:  # 2 steps per epoch: the last step of epoch 2 (the loss never sees it)
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = float("inf")
        return out

    monkeypatch.setattr(torch.optim.SGD, "step", poisons_the_second_epoch)
    run = tmp_path / "run"
    assert _train(run, flowers, "--batch-size", "5") == 2
    err = capsys.readouterr().err
    assert "The trained tensors became non-finite (ctx) in epoch 2" in err and "last good checkpoint is kept" in err
    tensors, state = resume.load_checkpoint(run)
    assert state["epoch"] == 1 and torch.isfinite(tensors["method.ctx"]).all()
    assert not (run / "prompt.safetensors").exists()


# --- 12: a failed run does not block its rerun; --overwrite validates first ----------------------
def test_a_run_that_failed_early_reruns_with_the_same_command(tmp_path, flowers, monkeypatch):
    from upt.engine.train import Trainer

    def fails(self, *a, **k):
        raise UptError("the first epoch failed")

    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(Trainer, "run_epoch", fails)
        assert _train(run, flowers) == 2
    assert (run / "upt.json").exists() and not (run / "checkpoint").exists()
    assert _train(run, flowers) == 0
    assert (run / "results.json").exists()


def test_overwrite_checks_the_new_data_before_deleting_the_old_run(tmp_path, flowers, capsys):
    run = tmp_path / "run"
    assert _train(run, flowers) == 0
    before = (run / "results.json").read_bytes()
    assert _train(run, f"folder:{tmp_path / 'no-such-folder'}", "--overwrite") == 2
    assert "no-such-folder" in capsys.readouterr().err
    assert (run / "results.json").read_bytes() == before and (run / "prompt.safetensors").exists()


# --- 4: validation and test images are checked before training ---------------------------------
def test_a_bad_test_image_stops_the_run_before_training(tmp_path, monkeypatch, capsys):
    from upt.data import load_dataset
    from upt.engine.train import Trainer

    photos = tmp_path / "flowers"
    shutil.copytree(shared_path("data", "flowers5"), photos)
    bad = load_dataset(f"folder:{photos}").test[3].path
    with open(bad, "r+b") as f:
        f.truncate(200)
    epochs = []
    monkeypatch.setattr(Trainer, "run_epoch", lambda self, *a, **k: epochs.append(1))
    out = tmp_path / "run"
    assert _train(out, f"folder:{photos}") == 2
    assert bad in capsys.readouterr().err
    assert epochs == [] and not out.exists()


# --- 16: a sweep compares whole configs --------------------------------------------------------
def _sweep(*argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["sweep", *argv])
    return rc, out.getvalue()


def test_sweep_rerun_with_other_settings_is_refused_by_key(tmp_path, flowers):
    root = tmp_path / "root"
    common = ["--methods", "coop", "--datasets", flowers, "--shots", "1", "--seeds", "1", "--backbone", "tiny",
              "--set", "data.num_workers=0", "--out", str(root)]
    assert _sweep(*common, "--epochs", "1")[0] == 0
    rc, printed = _sweep(*common, "--epochs", "1")
    assert rc == 0 and "1 already complete" in printed
    rc, printed = _sweep(*common, "--epochs", "2")
    assert rc == 1
    record = json.loads((root / "sweep-failures.jsonl").read_text().splitlines()[0])
    assert "was trained with other settings (optim.epochs: 1 -> 2)" in record["error"]
    rc, printed = _sweep(*common, "--epochs", "1", "--set", "data.eval_batch_size=9")
    assert rc == 0 and "1 already complete" in printed


# --- 6: a relative folder: path is stored resolved ---------------------------------------------
def test_relative_folder_dataset_is_stored_absolute_and_evaluates_from_elsewhere(tmp_path, monkeypatch, capsys):
    photos = tmp_path / "work" / "photos"
    shutil.copytree(shared_path("data", "flowers5"), photos)
    monkeypatch.chdir(tmp_path / "work")
    assert _train(tmp_path / "run", "folder:photos") == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["dataset"] == f"folder:{photos}" and results["split_info"]["dataset_given"] == "folder:photos"
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["eval", "--run", str(tmp_path / "run")]) == 0
