"""Data-parallel training (gloo on the CPU) equals single-process training with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from helpers import shared_path
from upt.cli import main

# Augmentation and dropout off, so every process sees exactly what the single process sees.
COMMON = ["--method", "upt", "--backbone", "tiny", "--shots", "4", "--epochs", "2", "--batch-size", "8",
          "--workers", "0", "--set", "data.train_transform=center_crop", "--set", "method_config.dropout=0"]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    assert main(["train", "--dataset", f"folder:{shared_path('data', 'flowers5')}", *COMMON, "--out", str(out)]) == 0
    return out


def _same_prompts(a, b):
    pa, pb = load_file(a / "prompt.safetensors"), load_file(b / "prompt.safetensors")
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.allclose(pa[k], pb[k], atol=1e-5), k


def _only_one_run_folder(root):
    folders = {p.parent for p in root.rglob("upt.json")}
    assert len(folders) == 1


def test_devices_2_equals_one_process(single, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{shared_path('data', 'flowers5')}", *COMMON, "--devices", "2",
                 "--out", str(out)]) == 0
    _same_prompts(single, out)
    _only_one_run_folder(tmp_path)
    a, b = (json.loads((p / "results.json").read_text()) for p in (single, out))
    assert b["devices"] == 2 and b["n_images"] == a["n_images"] and b["accuracy"] == a["accuracy"]


def test_torchrun_equals_one_process(single, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "upt", "train", "--dataset", f"folder:{shared_path('data', 'flowers5')}", *COMMON, "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _same_prompts(single, out)
    _only_one_run_folder(tmp_path)
    assert len(proc.stdout.strip().splitlines()) == 1  # rank 0 alone reports


def test_killed_data_parallel_run_resumes_to_the_same_prompts(tmp_path):
    import signal
    import time

    flowers = f"folder:{shared_path('data', 'flowers5')}"
    args = [*COMMON, "--epochs", "4"]
    straight = tmp_path / "straight"
    assert main(["train", "--dataset", flowers, *args, "--out", str(straight)]) == 0

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "upt", "train", "--dataset", flowers, *args, "--devices", "2", "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while not (run / "checkpoint" / "state.safetensors").exists() and proc.poll() is None:  # an epoch done, or the run
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks, mid-run
    proc.wait()
    if (run / "results.json").exists():
        pytest.skip("the run finished before it could be interrupted")
    assert main(["train", "--dataset", flowers, *args, "--devices", "2", "--out", str(run), "--resume"]) == 0
    assert "resumed from the end of epoch" in (run / "log.txt").read_text()
    _same_prompts(straight, run)


def test_non_finite_loss_stops_every_process(tmp_path, capsys):
    flowers = f"folder:{shared_path('data', 'flowers5')}"
    rc = main(["train", "--dataset", flowers, *COMMON, "--devices", "2", "--lr", "1e30",
               "--set", "optim.warmup_epochs=0", "--out", str(tmp_path / "run")])
    assert rc == 2
    assert "A data-parallel process stopped" in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.json").exists()
