"""The feature store: a sweep encodes each evaluation split once, its results equal a sweep without the
store, stale or damaged entries are recomputed, prompted image encoders are never served, and the
dry run states the passes and the time."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pytest

from helpers import shared_path
from upt.cli import main
from upt.engine.features import FeatureStore, served

FLOWERS_TEST = 90  # flowers5: 5 classes, the folder reader's 30 % test carve


@pytest.fixture(scope="module")
def flowers():
    return f"folder:{shared_path('data', 'flowers5')}"


def _count_encoded(monkeypatch) -> list[int]:
    """Images passed through any image tower's ``encode_images`` in this process, counted."""
    from upt.backbone import vision

    seen = [0]
    original = vision.VisionTower.encode_images

    def counting(self, images):
        seen[0] += len(images)
        return original(self, images)

    monkeypatch.setattr(vision.VisionTower, "encode_images", counting)
    return seen


def _sweep(flowers, root, *extra) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["sweep", "--methods", "zeroshot,linear-probe,coop", "--datasets", flowers, "--shots", "1,2",
                   "--seeds", "1,2", "--backbone", "tiny", "--epochs", "2", "--set", "data.num_workers=0",
                   "--out", str(root), *extra])
    assert rc == 0, out.getvalue()
    return out.getvalue()


def _results(root: Path) -> dict:
    return {str(p.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))}


@pytest.fixture(scope="module")
def two_sweeps(flowers, tmp_path_factory, request):
    """The same grid with the store and without it; images encoded by each."""
    mp = pytest.MonkeyPatch()
    request.addfinalizer(mp.undo)
    seen = _count_encoded(mp)
    base = tmp_path_factory.mktemp("sweeps")
    _sweep(flowers, base / "with")
    with_store = seen[0]
    _sweep(flowers, base / "without", "--set", "compute.feature_store=off")
    return base, with_store, seen[0] - with_store


def test_a_sweep_encodes_each_evaluation_split_once_and_equals_one_without(two_sweeps):
    base, with_store, without = two_sweeps
    # 9 runs (zero-shot once; linear probe and CoOp at 2 shots x 2 seeds) each evaluate the 90 test
    # images: without the store 9 encodings of them, with it one. Training encodes the same either way.
    assert without - with_store == (9 - 1) * FLOWERS_TEST
    entries = FeatureStore(base / "with" / "feature-store").entries()
    # the test split once; the linear probe's training and validation features per (shots, seed): 1 or 2
    # images per class of 5 (CoOp augments its training images, so they are not stored)
    assert sorted((e["key"]["split"], e["key"]["n_images"]) for e in entries) == [
        ("test", FLOWERS_TEST), *[("train", 5)] * 2, *[("train", 10)] * 2, *[("val", 5)] * 2, *[("val", 10)] * 2]
    assert not (base / "without" / "feature-store").exists()
    a, b = _results(base / "with"), _results(base / "without")
    assert a.keys() == b.keys() and len(a) == 9
    for run in a:
        assert (a[run]["accuracy"], a[run]["macro_f1"], a[run]["per_class_accuracy"]) == (
            b[run]["accuracy"], b[run]["macro_f1"], b[run]["per_class_accuracy"]), run


def test_eval_reads_the_store_and_a_damaged_or_stale_entry_is_recomputed(two_sweeps, tmp_path, monkeypatch, caplog):
    base, _, _ = two_sweeps
    run = base / "with" / "fewshot/flowers5/coop/2shot/seed1"
    want = json.loads((run / "results.json").read_text())["accuracy"]
    store = FeatureStore(base / "with" / "feature-store")
    seen = _count_encoded(monkeypatch)
    assert main(["eval", "--run", str(run), "--out", str(tmp_path / "a.json")]) == 0
    assert seen[0] == 0  # served from the store
    (entry,) = [Path(e["path"]) for e in store.entries() if e["key"]["split"] == "test"]
    blob = bytearray(entry.read_bytes())
    blob[-8:] = b"\x00" * 8  # damage the tensors; the metadata still parses
    entry.write_bytes(bytes(blob))
    assert main(["eval", "--run", str(run), "--out", str(tmp_path / "b.json")]) == 0
    assert seen[0] == FLOWERS_TEST and "fails its checksum" in caplog.text
    entry.write_bytes(entry.read_bytes()[:100])  # half a file, as a killed writer without rename would leave
    assert main(["eval", "--run", str(run), "--out", str(tmp_path / "c.json")]) == 0
    assert seen[0] == 2 * FLOWERS_TEST and "is damaged" in caplog.text
    for name in "abc":
        assert json.loads((tmp_path / f"{name}.json").read_text())["accuracy"] == want
    assert len(store.entries()) == 9 and not [p for p in store.root.iterdir() if p.name.startswith(".")]


def test_a_changed_image_changes_the_key(two_sweeps, flowers, tmp_path, monkeypatch):
    import shutil

    data = tmp_path / "flowers5"
    shutil.copytree(shared_path("data", "flowers5"), data)
    store = tmp_path / "store"
    args = ["train", "--method", "zeroshot", "--dataset", f"folder:{data}", "--backbone", "tiny", "--workers", "0",
            "--set", f"compute.feature_store={store}"]
    assert main([*args, "--out", str(tmp_path / "r1")]) == 0
    from upt.data import load_dataset

    test_image = load_dataset(f"folder:{data}").test[0].path
    st = os.stat(test_image)
    os.utime(test_image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the same name, another file
    assert main([*args, "--out", str(tmp_path / "r2")]) == 0
    keys = [e["key"] for e in FeatureStore(store).entries()]
    assert len(keys) == 2 and keys[0]["images"] != keys[1]["images"]


def test_prompted_image_encoders_are_never_served(tiny, flowers, tmp_path):
    from upt.methods import REGISTRY, build_method

    serve = {m for m, cls in REGISTRY.items() if served(cls)}
    assert {"zeroshot", "coop", "cocoop", "linear-probe"} <= serve
    assert not serve & {"vpt", "maple", "upt", "promptsrc", "clip-lora"}  # image encoders prompted or adapted
    assert all(served(build_method(m, tiny, ["a", "b"])) for m in ("zeroshot", "coop", "linear-probe"))
    assert not served(build_method("vpt", tiny, ["a", "b"]))
    store = tmp_path / "store"
    assert main(["train", "--method", "vpt", "--dataset", flowers, "--backbone", "tiny", "--shots", "1",
                 "--epochs", "1", "--workers", "0", "--set", f"compute.feature_store={store}",
                 "--out", str(tmp_path / "vpt")]) == 0
    assert FeatureStore(store).entries() == []


def test_cache_ls_and_clear(two_sweeps, capsys, tmp_path):
    import shutil

    store = tmp_path / "store"
    shutil.copytree(two_sweeps[0] / "with" / "feature-store", store)
    assert main(["cache", "ls", "--dir", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"tiny None fp32 cpu  {'folder:' + str(shared_path('data', 'flowers5'))} test (90 images, center_crop)" in out
    assert out.strip().endswith(f"9 entries, 0.0 MiB in {store}")
    assert main(["cache", "clear", "--dir", str(store)]) == 0
    assert capsys.readouterr().out.startswith("removed 9 file(s)") and FeatureStore(store).entries() == []


def test_dry_run_prints_passes_and_an_estimate(flowers, tmp_path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["sweep", "--methods", "zeroshot,linear-probe,coop,upt", "--datasets", flowers, "--shots", "1,2",
                     "--seeds", "1,2", "--backbone", "tiny", "--epochs", "3", "--out", str(tmp_path / "r"),
                     "--dry-run"]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.getvalue().splitlines()
            if line.split() and line.split()[0] in ("zeroshot", "linear-probe", "coop", "upt", "total")}
    # (runs, passes without the store, with it): 5 classes, train = shots x 5, val = min(shots, 4) x 5,
    # 90 test images; CoOp augments (3 epochs of forward passes), UPT prompts its encoder (3 epochs).
    lp_train = 2 * (5 + 5) + 2 * (10 + 10)
    coop_train = 3 * (2 * 5 + 2 * 10)
    assert {k: v[:3] for k, v in rows.items()} == {
        "zeroshot": ["1", "90", "90"],
        "linear-probe": ["4", f"{lp_train + 4 * 90}", f"{lp_train + 90}"],
        "coop": ["4", f"{coop_train + 4 * 90}", f"{coop_train + 90}"],
        "upt": ["4", f"{coop_train + 4 * 90}", f"{coop_train + 4 * 90}"],
        "total": ["13", f"{90 + lp_train + 2 * coop_train + 12 * 90:,}", f"{90 + lp_train + 2 * coop_train + 4 * 90}"],
    }
    assert all(len(v) == 5 and all(t.count(":") == 2 for t in v[3:]) for v in rows.values())
    assert "img/s forward" in out.getvalue() and not (tmp_path / "r").exists()
