"""`upt export`: for every method, the ONNX and TorchScript files give Predictor's probabilities on real
photos; the class text features are one constant in the graph; the sidecar says what the run's
transform does and where the model comes from; the README's torch-free deployment runs as shown."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import REPO, shared_path
from upt.cli import main
from upt.data import build_transform
from upt.data.images import load_image
from upt.errors import UptError
from upt.export import describe_preprocess, export_run, sidecar_path

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

# One optimiser step on one photo per class (warm-up off, so the prompts move).
TRAIN = ["--backbone", "tiny", "--workers", "0", "--seed", "1", "--shots", "1", "--epochs", "1", "--batch-size", "5",
         "--set", "optim.warmup_epochs=0"]
METHODS = {"zeroshot": [], "linear-probe": [], "coop": [], "cocoop": [], "vpt": [],
           "maple": [], "upt": []}  # MaPLe's depth: its preset's for tiny (2 layers)
# The newer methods go through the same export path (their graphs hold more than one constant matrix).
NEWER = {"kgcoop": [], "tip-adapter": [], "tip-adapter-f": [], "clip-lora": ["--set", "method_config.iterations=1"],
         "promptsrc": []}


@pytest.fixture(scope="module")
def flowers() -> Path:
    return shared_path("data", "flowers5")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, flowers):
    """``runs(method)``: a short run of ``method`` on the tiny backbone, trained once per module."""
    root, done = tmp_path_factory.mktemp("runs"), {}

    def get(method: str) -> Path:
        if method not in done:
            out = root / method
            assert main(["train", "--method", method, "--dataset", f"folder:{flowers}", *TRAIN, *{**METHODS, **NEWER}[method],
                         "--out", str(out)]) == 0
            done[method] = out
        return done[method]

    return get


@pytest.fixture(scope="module")
def photos(flowers) -> list[str]:
    return [str(sorted((flowers / c).iterdir())[i]) for c in sorted(p.name for p in flowers.iterdir()) for i in (0, 1)]


def _predictor_probabilities(predictor, photos: list[str]) -> np.ndarray:
    """Predictor's probabilities (images × classes, in class order) through its public rows."""
    n = len(predictor.classnames)
    rows = list(predictor.predict(photos, topk=n))
    index = {c: j for j, c in enumerate(predictor.classnames)}
    probs = np.zeros((len(photos), n))
    for i, row in enumerate(rows):
        for top in row["top"]:
            probs[i, index[top["class"]]] = top["probability"]
    return probs


def _exported_probabilities(path: Path, fmt: str, images: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(torch.from_numpy(images)).numpy()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("method", [*METHODS, *NEWER])
def test_exported_file_gives_the_predictors_probabilities(method, fmt, runs, photos, tmp_path):
    from upt import Predictor

    run = runs(method)
    out = tmp_path / ("model.onnx" if fmt == "onnx" else "model.pt")
    sidecar = export_run(run, out, fmt)
    predictor = Predictor(run, device="cpu")
    images = np.stack([predictor.transform(load_image(p)).numpy() for p in photos])  # 10 images; traced with 2
    got = _exported_probabilities(out, fmt, images)
    expected = _predictor_probabilities(predictor, photos)  # rounded to 6 decimals by Predictor
    assert got.shape == expected.shape == (len(photos), 5)
    assert np.abs(got - expected).max() <= 1e-4
    assert np.abs(_exported_probabilities(out, fmt, images[:1]) - got[:1]).max() <= 1e-6  # a batch of one
    assert sidecar["classnames"] == predictor.classnames == json.loads((run / "upt.json").read_text())["classnames"]
    assert json.loads(sidecar_path(out).read_text()) == {k: v for k, v in sidecar.items() if k != "check"}
    assert sidecar["format"] == fmt and sidecar["model"] == out.name and sidecar["check"] <= 1e-4


@pytest.mark.parametrize("method", [m for m in METHODS if m != "cocoop"])
def test_onnx_graph_holds_the_class_features_as_one_constant(method, runs, tmp_path):
    from upt import Predictor

    run = runs(method)
    sidecar = export_run(run, tmp_path / "model.onnx")
    method_ = Predictor(run, device="cpu").method
    with torch.no_grad():
        matrix = method_.weight if method == "linear-probe" else method_.encode_text()  # (classes, D)
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    constants = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    constants.update({n.output[0]: onnx.numpy_helper.to_array(a.t) for n in graph.node if n.op_type == "Constant"
                      for a in n.attribute if a.name == "value"})
    want = matrix.t().numpy()
    matches = [name for name, v in constants.items() if v.shape == want.shape and (v == want).all()]
    assert len(matches) == 1  # the features, computed once, exactly
    feeds = [n for n in graph.node if n.op_type in ("MatMul", "Gemm") and matches[0] in n.input]
    assert len(feeds) == 1 and [i.name for i in graph.input] == ["images"]
    kind = "constant linear-probe weights" if method == "linear-probe" else "constant text features"
    assert sidecar["classifier"] == kind


def test_cocoop_exports_its_image_conditioned_text_path(runs, tmp_path):
    from upt import Predictor

    run = runs("cocoop")
    sidecar = export_run(run, tmp_path / "model.onnx")
    assert sidecar["classifier"] == "image-conditioned text encoder (N × n_cls prompts per batch)"
    method = Predictor(run, device="cpu").method
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    constants = [onnx.numpy_helper.to_array(i) for i in graph.initializer]
    # the learned context and the meta-net that shifts it per image are in the graph, not text features
    for learned in (method.ctx, method.meta_net.linear1.weight):
        want = learned.detach().numpy()
        assert any(v.shape == want.shape and (v == want).all() for v in constants)
    n_cls, d = 5, method.backbone.embed_dim
    assert not any(v.shape in ((n_cls, d), (d, n_cls)) for v in constants)


def test_sidecar_records_the_preprocessing_and_the_provenance(runs, tmp_path):
    import upt

    run = runs("upt")
    sidecar = export_run(run, tmp_path / "model.onnx")
    meta = json.loads((run / "upt.json").read_text())
    results = json.loads((run / "results.json").read_text())
    pre = meta["backbone"]["preprocess"]
    assert {k: sidecar["preprocess"][k] for k in ("mode", "resize", "interpolation", "crop", "mean", "std")} == {
        "mode": "RGB", "resize": pre["size"], "interpolation": pre["interpolation"], "crop": pre["size"],
        "mean": pre["mean"], "std": pre["std"]}
    assert sidecar["input"] == {"name": "images", "shape": ["N", 3, 32, 32], "dtype": "float32"}
    assert sidecar["output"] == {"name": "probabilities", "shape": ["N", 5], "dtype": "float32"}
    prov = sidecar["provenance"]
    assert {k: prov[k] for k in ("method", "method_config", "dataset", "shots", "seed")} == {
        k: results[k] for k in ("method", "method_config", "dataset", "shots", "seed")}
    assert (prov["backbone"], prov["pretrained"], prov["quick_gelu"]) == ("tiny", None, meta["backbone"]["quick_gelu"])
    assert (prov["accuracy"], prov["macro_f1"], prov["n_images"]) == (results["accuracy"], results["macro_f1"], 90)
    assert prov["upt_version"] == meta["versions"]["upt"] == upt.__version__ and prov["run"] == str(run)


def test_preprocessing_is_read_from_the_transform_itself():
    pre = {"size": 48, "mean": (0.5, 0.25, 0.125), "std": (0.2, 0.3, 0.4), "interpolation": "bilinear"}
    got = describe_preprocess(build_transform(pre, train=False))
    assert {k: got[k] for k in ("resize", "interpolation", "crop", "mean", "std")} == {
        "resize": 48, "interpolation": "bilinear", "crop": 48, "mean": [0.5, 0.25, 0.125], "std": [0.2, 0.3, 0.4]}
    with pytest.raises(UptError, match="RandomHorizontalFlip, which is random"):
        describe_preprocess(build_transform(pre, train=False, name="center_crop_flip"))


def test_a_run_that_evaluates_with_a_random_transform_is_refused(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs("coop"), run)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("eval_transform: center_crop", "eval_transform: center_crop_flip"))
    with pytest.raises(UptError, match="random"):
        export_run(run, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_bad_input_is_one_sentence(runs, tmp_path, monkeypatch, capsys):
    with pytest.raises(UptError, match="config.yaml is missing; is .* a upt run folder"):
        export_run(tmp_path, tmp_path / "model.onnx")
    with pytest.raises(UptError, match="Unknown export format 'tflite'"):
        export_run(runs("coop"), tmp_path / "model.onnx", "tflite")
    with pytest.raises(UptError, match="Cannot tell the export format from the name model.bin"):
        export_run(runs("coop"), tmp_path / "model.bin")
    with pytest.raises(UptError, match="is a folder"):
        export_run(runs("coop"), tmp_path, "onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(UptError, match=re.escape("needs onnxruntime to check the exported file; pip install "
                                                 "'upt[export]'.")):
        export_run(runs("coop"), tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
    export_run(runs("coop"), tmp_path / "model.pt")  # TorchScript needs torch alone
    capsys.readouterr()
    assert main(["export", "--run", str(runs("coop")), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'upt[export]'" in err


def test_the_command_line_prints_one_line_per_export(runs, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["export", "--run", str(runs("vpt")), "--format", "onnx", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("onnx · vpt · 5 classes · input N×3×32×32 · largest difference from the run ")
    assert line.endswith(f" · {out} + {out}.json") and out.exists() and Path(f"{out}.json").exists()
    assert main(["export", "--run", str(runs("vpt")), "--out", str(tmp_path / "model.pt"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["format"] == "torchscript" and printed["classnames"] == ["daisy", "dandelion", "rose", "sunflower",
                                                                           "tulip"]


# --- the README's deployment without torch -------------------------------------------------------
def _readme_snippet() -> str:
    text = (REPO / "README.md").read_text()
    after = text.split("\n### Deploy without torch\n", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def _photos_of_every_shape() -> list[Path]:
    """Real photos whose resize and crop differ: square, landscape, portrait, and one whose crop offset
    (side - crop) / 2 ends in .5 and rounds up (torchvision rounds it; flooring it would shift a pixel)."""
    from PIL import Image

    dtd = shared_path("data", "dtd10", "dtd", "images")
    picked: dict[str, Path] = {}
    for path in sorted(dtd.glob("*/*.jpg")):
        w, h = Image.open(path).size
        margin = 32 * max(w, h) // min(w, h) - 32
        kind = "square" if w == h else "landscape" if w > h else "portrait"
        picked.setdefault(kind, path)
        if round(margin / 2) != margin // 2:
            picked.setdefault("rounds-up", path)
    return [picked[k] for k in ("square", "landscape", "portrait", "rounds-up")]


def test_the_readme_deploys_with_onnxruntime_numpy_and_pillow_only(runs, tmp_path):
    from upt import Predictor

    run = runs("upt")
    snippet = _readme_snippet()
    export_run(run, tmp_path / "model.onnx")
    (tmp_path / "deploy.py").write_text(snippet)
    predictor = Predictor(run, device="cpu")
    blocked = "import runpy, sys; sys.modules['torch'] = None; runpy.run_path('deploy.py')"  # no torch at all
    photos = _photos_of_every_shape()
    for photo in photos:
        shutil.copyfile(photo, tmp_path / "photo.jpg")
        done = subprocess.run([sys.executable, "-c", blocked], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        best = predictor.predict(str(photo), topk=3).__next__()["top"]
        assert len(lines) == 3
        for line, top in zip(lines, best, strict=True):
            probability, name = line.split(" ", 1)
            assert name == top["class"]
            assert abs(float(probability) - top["probability"]) <= 1e-4
