"""``upt sweep`` end to end on real photos with the tiny backbone: every run present, a sweep killed
midway completes on re-run without redoing finished runs, a failing run is recorded while the others
finish, and grids are checked before anything runs."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import shared_path
from upt.cli import main
from upt.errors import UptError
from upt.sweep import load_grid, plan_jobs

METHODS, SHOTS, SEEDS = ["coop", "vpt"], [1, 2], [1, 2]
FAST = {"backbone": "tiny", "epochs": 1, "set": ["data.num_workers=0"]}


def photo_folders(factory) -> dict[str, str]:
    """flowers5 as shared, and a copy of 8 train / 10 test CIFAR-10 photos per class (evaluating all
    500 test images would dominate every run's time on a busy CPU); built once per session."""
    src = shared_path("data", "cifar10")
    dst = factory.getbasetemp() / "photos" / "cifar10"
    if not dst.exists():
        for split, n in (("train", 8), ("test", 10)):
            for cls in sorted((src / split).iterdir()):
                (dst / split / cls.name).mkdir(parents=True)
                for image in sorted(cls.iterdir())[:n]:
                    shutil.copy(image, dst / split / cls.name / image.name)
    return {"flowers5": f"folder:{shared_path('data', 'flowers5')}", "cifar10": f"folder:{dst}"}


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    return photo_folders(tmp_path_factory)


def expected_runs(root: Path, photos: dict[str, str]) -> dict[Path, tuple]:
    return {root / f"fewshot/{slug}/{m}/{k}shot/seed{s}" / "results.json": (m, d, k, s)
            for slug, d in photos.items() for m in METHODS for k in SHOTS for s in SEEDS}


def _sweep(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["sweep", *argv])
    return rc, out.getvalue()


def make_sweep_root(factory) -> dict:
    """The 2 methods x 2 datasets x 2 shots x 2 seeds sweep, killed once midway and re-run.

    Built once per session (the report tests reuse the folder): ``root``, the grid file,
    ``before`` (results.json -> mtime when the first sweep was killed) and the re-run's summary.
    """
    photos = photo_folders(factory)  # skips (before anything is created) when the photos are absent
    base = factory.getbasetemp() / "fewshot-sweep"
    state = base / "state.json"
    if state.exists():
        return {k: Path(v) if k in ("root", "grid") else v for k, v in json.loads(state.read_text()).items()}
    base.mkdir()
    root, grid = base / "root", base / "grid.yaml"
    grid.write_text(yaml.safe_dump({"protocol": "fewshot", "methods": METHODS,
                                    "datasets": list(photos.values()),
                                    "shots": SHOTS, "seeds": SEEDS, **FAST}))
    proc = subprocess.Popen([sys.executable, "-m", "upt", "sweep", str(grid), "--out", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(list(root.rglob("results.json"))) < 3 and proc.poll() is None:  # three runs done, or the sweep
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    before = {str(p): p.stat().st_mtime_ns for p in root.rglob("results.json")}
    rc, printed = _sweep(str(grid), "--out", str(root))
    result = {"root": str(root), "grid": str(grid), "before": before, "rc": rc, "printed": printed}
    state.write_text(json.dumps(result))
    return {**result, "root": root, "grid": grid}


@pytest.fixture(scope="session")
def swept(tmp_path_factory):
    return make_sweep_root(tmp_path_factory)


def test_every_run_present_with_its_identity(swept, photos):
    assert swept["rc"] == 0, swept["printed"]
    runs = expected_runs(swept["root"], photos)
    assert sorted(map(str, swept["root"].rglob("results.json"))) == sorted(map(str, runs))
    for path, (method, dataset, shots, seed) in runs.items():
        r = json.loads(path.read_text())
        assert (r["method"], r["dataset"], r["shots"], r["seed"]) == (method, dataset, shots, seed)
        assert (r["protocol"], r["backbone"], r["classes"]) == ("fewshot", "tiny", "all")


def test_killed_sweep_completes_without_redoing_finished_runs(swept):
    before = swept["before"]
    assert 3 <= len(before) < 16, "the first sweep must be killed midway"
    for path, mtime in before.items():
        assert Path(path).stat().st_mtime_ns == mtime, f"{path} was redone"
    done = int(re.search(r"(\d+) already complete", swept["printed"]).group(1))
    assert done >= len(before)


def test_rerun_skips_everything_and_resumes_a_crashed_run(swept):
    root, grid = swept["root"], str(swept["grid"])
    crashed = root / "fewshot/flowers5/coop/2shot/seed1"
    (crashed / "results.json").unlink()  # as if killed after the last checkpoint
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["sweep", grid, "--out", str(root), "--dry-run"]) == 0
    listing = out.getvalue()
    assert "resume  fewshot/flowers5/coop/2shot/seed1" in listing and "--resume" in listing
    assert listing.count("\ndone") + listing.startswith("done") == 15
    others = {p: p.stat().st_mtime_ns for p in root.rglob("results.json")}
    rc, printed = _sweep(grid, "--out", str(root))
    assert rc == 0 and "15 already complete, 1 steps run, 0 failed" in printed
    assert (crashed / "results.json").is_file()
    assert all(p.stat().st_mtime_ns == m for p, m in others.items())


def test_failing_run_is_recorded_while_the_others_finish(tmp_path, photos):
    """Two worker processes; one dataset has unreadable images."""
    bad = tmp_path / "broken"
    for cls in ("a", "b"):
        (bad / cls).mkdir(parents=True)
        for i in range(3):
            (bad / cls / f"{i}.jpg").write_bytes(b"not a jpeg")
    root = tmp_path / "root"
    rc, printed = _sweep("--methods", "coop", "--datasets", f"{photos['flowers5']},folder:{bad}", "--shots", "1",
                         "--seeds", "1", "--backbone", "tiny", "--epochs", "1", "--set", "data.num_workers=0",
                         "--out", str(root), "--workers", "2")
    assert rc == 1
    assert "FAILED fewshot/broken/coop/1shot/seed1 (train)" in printed
    records = [json.loads(line) for line in (root / "sweep-failures.jsonl").read_text().splitlines()]
    assert [(r["run"], r["step"]) for r in records] == [("fewshot/broken/coop/1shot/seed1", "train")]
    job_file = root / "sweep-jobs/fewshot/broken/coop/1shot/seed1.yaml"
    assert "cannot be read" in records[0]["error"]
    assert records[0]["command"] == f"upt train --config {job_file} --out {root / 'fewshot/broken/coop/1shot/seed1'}"
    job = yaml.safe_load(job_file.read_text())  # the resolved config: rerunning the command reproduces the run
    assert (job["method"], job["dataset"], job["shots"], job["seed"], job["backbone"]) == (
        "coop", f"folder:{bad}", 1, 1, "tiny")
    assert Path(records[0]["log"]).is_file()
    done = json.loads((root / "fewshot/flowers5/coop/1shot/seed1/results.json").read_text())
    assert done["n_images"] == 90 and done["fewshot"]["shots"] == 1 and len(done["fewshot"]["train"]) == 5


def test_dry_run_lists_every_step_and_runs_nothing(tmp_path, photos):
    flowers = photos["flowers5"]
    root = tmp_path / "root"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["sweep", "--protocol", "base2new", "--methods", "coop,zeroshot", "--datasets", flowers,
                     "--seeds", "1,2,3", "--backbone", "tiny", "--out", str(root), "--dry-run"]) == 0
    text = out.getvalue()
    assert "4 runs (4 todo)" in text  # coop x 3 seeds; zero-shot once (it uses no labelled image)
    assert text.count("upt train --config ") == 4 and text.count("base classes, 16 shots") == 3
    assert "train zeroshot on " in text and "base classes, 0 shots, seed 1" in text
    assert text.count("upt eval ") == 4 and text.count("--classes new") == 4
    assert "base2new/flowers5/zeroshot/0shot/seed1" in text and "zeroshot/16shot" not in text
    assert not root.exists()


def test_grid_mistakes_are_caught_before_anything_runs(tmp_path):
    with pytest.raises(UptError, match="Did you mean 'cross-dataset'"):
        load_grid(None, {"protocol": "cross_dataset", "methods": ["coop"]})
    bad = tmp_path / "grid.yaml"
    bad.write_text("methods: [coop]\nshot: [1]\n")
    with pytest.raises(UptError, match=r"Unknown grid key\(s\) \['shot'\]"):
        load_grid(bad)
    with pytest.raises(UptError, match="Unknown method 'cop'"):
        plan_jobs(load_grid(None, {"methods": ["cop"], "datasets": ["dtd"], "backbone": "tiny"}), tmp_path)
    with pytest.raises(UptError, match="evaluates on the training dataset only"):
        load_grid(None, {"methods": ["coop"], "targets": ["dtd"]})
    grid = load_grid("grids/dg", {"backbone": "tiny", "pretrained": "none"})
    jobs = plan_jobs(grid, tmp_path)
    # zero-shot once, the 4 trained methods x 3 seeds each
    assert len(jobs) == 4 * 3 + 1 and jobs[0].evals == tuple((t, "all") for t in
                                                              ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"))
    assert [(j.config.protocol, j.config.dataset, j.config.shots) for j in jobs] == [("dg", "imagenet", 0)] + [
        ("dg", "imagenet", 16)] * 12


def test_workers_get_one_gpu_each_or_a_share_of_cpu_threads(monkeypatch):
    from upt.sweep import execute

    monkeypatch.setattr(execute, "visible_gpus", lambda: ["2", "5"])
    envs = execute.worker_envs(3)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["2", "5", "2"]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    envs = execute.worker_envs(2, pin_gpus=False)
    assert all("CUDA_VISIBLE_DEVICES" not in e or e["CUDA_VISIBLE_DEVICES"] == execute.os.environ.get(
        "CUDA_VISIBLE_DEVICES") for e in envs)
    assert {e["OMP_NUM_THREADS"] for e in envs} == {str(max(1, (execute.os.cpu_count() or 1) // 2))}


def test_submitit_local_executor_runs_then_skips(tmp_path, photos):
    pytest.importorskip("submitit")
    root = tmp_path / "root"
    argv = ["--methods", "coop", "--datasets", photos["cifar10"], "--shots", "1", "--seeds", "1,2",
            "--backbone", "tiny", "--epochs", "1", "--set", "data.num_workers=0", "--out", str(root),
            "--executor", "local", "--timeout-min", "10"]
    rc, printed = _sweep(*argv)
    assert rc == 0, printed
    results = sorted(root.rglob("results.json"))
    assert len(results) == 2 and "2 steps run" in printed
    assert list((root / "submitit").iterdir())  # the executor's own logs
    mtimes = [p.stat().st_mtime_ns for p in results]
    rc, printed = _sweep(*argv)
    assert rc == 0 and "2 already complete, 0 steps run" in printed
    assert [p.stat().st_mtime_ns for p in results] == mtimes
