"""The command line for people: `upt eval`'s summary, `upt predict` on anything and past bad files,
`upt train --help` defaults, `upt list` on the default backbone within 100 columns, and which methods
each backbone can run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from helpers import shared_path
from upt.backbone import Backbone, Preprocess, TextTower, VisionTower
from upt.backbone.configs import BUILTIN_CONFIGS, METHOD_SEAMS, method_support
from upt.cli import build_parser, main
from upt.errors import UptError
from upt.methods import REGISTRY

TINY = ["--backbone", "tiny", "--workers", "0", "--shots", "2", "--seed", "1", "--epochs", "2", "--batch-size", "4"]


@pytest.fixture(scope="module")
def flowers() -> Path:
    return shared_path("data", "flowers5")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, flowers) -> Path:
    """A CoOp run on the tiny backbone (tests that write into a run copy it first)."""
    run = tmp_path_factory.mktemp("runs") / "coop"
    assert main(["train", "--method", "coop", "--dataset", f"folder:{flowers}", *TINY, "--out", str(run)]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


@pytest.fixture(scope="module")
def predictor(trained):
    from upt import Predictor

    return Predictor(trained, device="cpu")


def _roses(flowers: Path, n: int = 2) -> list[Path]:
    return sorted((flowers / "rose").iterdir())[:n]


def _stdout_lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


# --- 4. `upt eval` prints one line for people; --json keeps the JSON line ------------------------
def test_summary_line_format():
    from upt.commands.eval import summary_line

    assert summary_line({"accuracy": 71.4286, "macro_f1": 70.1234, "n_images": 90}, "RUN/eval/x.json") == (
        "accuracy 71.43% · macro-F1 70.12 · 90 images · record -> RUN/eval/x.json")
    assert summary_line({"accuracy": 100.0, "macro_f1": 100.0, "n_images": 1}, "r.json") == (
        "accuracy 100.00% · macro-F1 100.00 · 1 image · record -> r.json")


def test_eval_prints_a_summary_naming_the_record(run, capsys):
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--device", "cpu"]) == 0
    (record,) = (run / "eval").iterdir()
    r = json.loads(record.read_text())
    assert _stdout_lines(capsys) == [
        f"accuracy {r['accuracy']:.2f}% · macro-F1 {r['macro_f1']:.2f} · {r['n_images']} images · record -> {record}"]


def test_eval_summary_names_out(run, tmp_path, capsys):
    out = tmp_path / "records" / "flowers.json"
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--device", "cpu", "--out", str(out)]) == 0
    (line,) = _stdout_lines(capsys)
    assert line.endswith(f" images · record -> {out}") and out.is_file() and not (run / "eval").exists()


def test_eval_json_is_one_json_line(run, flowers, capsys):
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--device", "cpu", "--json"]) == 0
    (line,) = _stdout_lines(capsys)
    (record,) = (run / "eval").iterdir()
    r = json.loads(record.read_text())
    assert json.loads(line) == {"run": str(run), "dataset": f"folder:{flowers}", "classes": "all",
                                "accuracy": round(r["accuracy"], 2), "macro_f1": round(r["macro_f1"], 2),
                                "n_images": r["n_images"], "record": str(record)}


# --- 12. Predictor on images in memory ---------------------------------------------------------------
def _tops(rows: list[dict]) -> list[list[dict]]:
    return [r["top"] for r in rows]


def test_in_memory_images_match_their_files(predictor, flowers):
    paths = _roses(flowers)
    by_path = list(predictor.predict(paths, topk=3))
    pil = [Image.open(p) for p in paths]
    arrays = [np.array(im.convert("RGB")) for im in pil]
    as_uint8 = [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in arrays]
    as_float = [t.float() / 255 for t in as_uint8]
    assert [r["path"] for r in by_path] == [str(p) for p in paths]
    for given in (pil, arrays, [a / 255.0 for a in arrays], as_uint8, as_float):
        rows = list(predictor.predict(given, topk=3))
        assert [r["input"] for r in rows] == [0, 1] and "path" not in rows[0]
        assert _tops(rows) == _tops(by_path)
    if as_uint8[0].shape == as_uint8[1].shape:  # a batch needs images of one size
        assert _tops(predictor.predict(torch.stack(as_uint8), topk=3)) == _tops(by_path)


def test_a_batch_tensor_is_its_images(predictor):
    batch = torch.rand(3, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    as_list = list(predictor.predict(list(batch), topk=2))  # the same images in one forward pass: same numbers
    rows = list(predictor.predict(batch, topk=2))
    assert [r["input"] for r in rows] == [0, 1, 2] and rows == as_list
    alone = list(predictor.predict(batch[2], topk=2))[0]
    assert alone["input"] == 0 and [t["class"] for t in alone["top"]] == [t["class"] for t in rows[2]["top"]]


def test_greyscale_array_matches_a_greyscale_file(predictor, flowers, tmp_path):
    grey = Image.open(_roses(flowers, 1)[0]).convert("L")
    grey.save(tmp_path / "grey.png")
    (from_file,) = predictor.predict([tmp_path / "grey.png"], topk=3)
    (from_array,) = predictor.predict(np.asarray(grey), topk=3)
    (from_tensor,) = predictor.predict(torch.from_numpy(np.array(grey)), topk=3)
    assert from_array == from_tensor == {"input": 0, "top": from_file["top"]}


def test_mixed_list_keeps_order_and_positions(predictor, flowers):
    rose = _roses(flowers, 1)[0]
    image = np.asarray(Image.open(rose).convert("RGB"))
    batch = torch.rand(2, 3, 32, 32)
    rows = list(predictor.predict([rose, image, flowers / "tulip", batch, Image.open(rose)], topk=1))
    tulips = sorted(str(flowers / "tulip" / p.name) for p in (flowers / "tulip").iterdir())
    keys = [r.get("path", r.get("input")) for r in rows]
    assert keys == [str(rose), 1, *tulips, 3, 4, 5]
    assert rows[0]["top"] == rows[1]["top"] == rows[-1]["top"]


@pytest.mark.parametrize("given,message", [
    (42, "Cannot classify an object of type int; pass image paths, folders, PIL images, numpy arrays or torch "
         "tensors, or a list of them."),
    ([1.5], "Input 0 is of type float, which cannot be classified; pass image paths, folders, PIL images, numpy "
            "arrays or torch tensors."),
    (np.zeros((3, 20, 20), np.uint8), "Input 0 has shape 3×20×20, channels first; numpy images are channels last "
                                      "(H×W×3): transpose it, or pass it as a torch tensor."),
    (torch.zeros(20, 20, 3), "Input 0 has shape 20×20×3, channels last; torch images are channels first (3×H×W): "
                             "permute it, or pass it as a numpy array."),
    (np.zeros((20, 20, 2), np.uint8), "Input 0 has shape 20×20×2; an image array is H×W×3, H×W×4 or H×W "
                                      "(greyscale), or N×H×W×3 for a batch."),
    (torch.zeros(2, 1, 3, 20, 20), "Input 0 has shape 2×1×3×20×20; an image tensor is 3×H×W or H×W (greyscale), "
                                   "or N×3×H×W for a batch."),
    (np.zeros((20, 20, 3), np.int64), "Input 0 has dtype int64; pass uint8 pixels (0..255) or float pixels (0..1)."),
    (torch.full((3, 20, 20), 2.5), "Input 0 is a float image with values from 2.5 to 2.5; float pixels must lie in "
                                   "0..1 (raw, not normalised), or pass uint8 0..255."),
    (np.zeros((0, 20, 3), np.uint8), "Input 0 is empty (shape 0×20×3)."),
], ids=["int", "float-in-list", "numpy-chw", "torch-hwc", "two-channels", "5d", "int64", "normalised", "empty"])
def test_unsupported_inputs_are_one_sentence(predictor, given, message):
    with pytest.raises(UptError) as caught:
        list(predictor.predict(given))
    assert str(caught.value) == message


def test_unsupported_input_raises_before_any_row(predictor, flowers):
    rows = predictor.predict([_roses(flowers, 1)[0], b"not an image"], errors="report")
    with pytest.raises(UptError, match="^Input 1 is of type bytes, which cannot be classified"):
        next(rows)


def test_predictor_uses_the_runs_eval_transform(run):
    from upt import Predictor

    config = run / "config.yaml"
    config.write_text(config.read_text().replace("eval_transform: center_crop", "eval_transform: random_resized_crop"))
    assert "RandomResizedCrop" in repr(Predictor(run, device="cpu").transform)


# --- 13. unreadable files: error rows, the others go on ------------------------------------------
@pytest.fixture
def folder_with_a_bad_image(flowers, tmp_path) -> tuple[Path, Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in _roses(flowers, 3):
        shutil.copy(p, folder / p.name)
    bad = folder / "b-broken.jpg"  # sorts between the roses
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder, bad


def _read_error(path: Path) -> str:
    from upt.data.images import ImageReadError, load_image

    with pytest.raises(ImageReadError) as caught:
        load_image(str(path))
    return str(caught.value)


def test_cli_reports_a_bad_image_and_goes_on(trained, folder_with_a_bad_image, capsys):
    folder, bad = folder_with_a_bad_image
    capsys.readouterr()
    assert main(["predict", "--run", str(trained), "--device", "cpu", "--topk", "2", str(folder)]) == 1
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in rows] == sorted(str(p) for p in folder.iterdir())
    assert [r for r in rows if "error" in r] == [{"path": str(bad), "error": _read_error(bad)}]
    assert all(len(r["top"]) == 2 for r in rows if "error" not in r)
    assert err.strip() == 'upt: 1 of 4 inputs could not be classified; see their "error" rows.'


def test_cli_reports_a_missing_file_and_exits_1(trained, flowers, tmp_path, capsys):
    capsys.readouterr()
    rose = _roses(flowers, 1)[0]
    assert main(["predict", "--run", str(trained), "--device", "cpu", str(tmp_path / "gone.jpg"), str(rose)]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == {"path": str(tmp_path / "gone.jpg"), "error": f"{tmp_path / 'gone.jpg'} does not exist."}
    assert rows[1]["path"] == str(rose) and "top" in rows[1]


def test_cli_exits_0_when_every_image_reads(trained, flowers, capsys):
    assert main(["predict", "--run", str(trained), "--device", "cpu", *map(str, _roses(flowers))]) == 0
    assert capsys.readouterr().err == ""


def test_error_policies(predictor, folder_with_a_bad_image):
    folder, bad = folder_with_a_bad_image
    from upt.data.images import ImageReadError

    with pytest.raises(ImageReadError):
        list(predictor.predict([folder]))
    good = sorted(str(p) for p in folder.iterdir() if p != bad)
    skipped = list(predictor.predict([folder], errors="skip", batch_size=2))
    reported = list(predictor.predict([folder], errors="report", batch_size=2))
    assert [r["path"] for r in skipped] == good and all("top" in r for r in skipped)
    assert [r for r in reported if "error" not in r] == skipped
    assert [r for r in reported if "error" in r] == [{"path": str(bad), "error": _read_error(bad)}]
    with pytest.raises(UptError, match="^Unknown errors policy 'ignore'; choose raise, skip or report.$"):
        list(predictor.predict([folder], errors="ignore"))


def test_raise_policy_stops_before_any_row_on_a_missing_path(predictor, flowers, tmp_path):
    rows = predictor.predict([_roses(flowers, 1)[0], tmp_path / "gone.jpg"])
    with pytest.raises(UptError, match="gone.jpg does not exist.$"):
        next(rows)


# --- 14. `upt train --help` states the defaults; `upt list methods` on train's default backbone -------
def _train_help(capsys, monkeypatch) -> dict[str, str]:
    """The help text of each `upt train` option as --help prints it, whitespace collapsed."""
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    printed = " ".join(capsys.readouterr().out.split())
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    helps = {a.option_strings[0]: " ".join(a.help.split()) for a in train._actions if a.option_strings and a.help}
    assert all(h in printed for h in helps.values())
    return helps


def test_train_help_states_defaults_that_match_the_config(capsys, monkeypatch):
    from upt.engine.config import DataConfig, OptimConfig, RunConfig
    from upt.engine.presets import packaged_preset

    helps = _train_help(capsys, monkeypatch)
    preset = {m: packaged_preset(f"methods/{m}") for m in ("coop", "cocoop", "maple", "upt", "vpt")}
    maple_dg = preset["maple"]["protocols"]["dg"]["optim"]
    batch = ", ".join(f"{n} {preset[m]['optim']['batch_size']}"
                      for m, n in [("coop", "CoOp"), ("cocoop", "CoCoOp"), ("maple", "MaPLe"), ("upt", "UPT"),
                                   ("vpt", "VPT")])
    expected = {
        "--method": f"(default: {RunConfig.method}); its paper settings for the protocol apply to every option left unset",
        "--backbone": f"(default: {RunConfig.backbone}); `upt list backbones` shows the methods each can run",
        "--classes": f"(default: {RunConfig.classes}; base under --protocol base2new)",
        "--workers": f"(default: {DataConfig.num_workers}; 0 loads in the main process)",
        "--batch-size": f"default: the method's paper setting for the protocol, e.g. {batch}; "
                        f"else {OptimConfig.batch_size}",
        "--lr": f"e.g. CoOp, CoCoOp, UPT, VPT {preset['coop']['optim']['lr']}, MaPLe {preset['maple']['optim']['lr']} "
                f"(dg, cross-dataset: {maple_dg['lr']}); else {OptimConfig.lr}",
        "--epochs": f"e.g. CoCoOp {preset['cocoop']['optim']['epochs']}; MaPLe {preset['maple']['optim']['epochs']} "
                    f"(dg, cross-dataset: {maple_dg['epochs']}); CoOp by shots (dg, cross-dataset: "
                    f"{preset['coop']['protocols']['dg']['optim']['epochs']}); else by shots: 1 -> 50, 2 or 4 -> 100, "
                    "8 or 16 -> 200 (ImageNet: 50)",
    }
    for flag, phrase in expected.items():
        assert phrase in helps[flag], flag
    assert all(preset[m]["protocols"]["dg"] == preset[m]["protocols"]["cross-dataset"] for m in ("coop", "maple"))
    assert preset["coop"]["optim"]["lr"] == preset["cocoop"]["optim"]["lr"] == preset["upt"]["optim"]["lr"] == (
        preset["vpt"]["optim"]["lr"])


def test_list_methods_defaults_to_trains_backbone_without_weights(capsys, monkeypatch, vit_b16):
    import upt.backbone
    from upt.engine.config import RunConfig
    from upt.methods import describe_methods

    calls = []

    def load(name, pretrained="openai", *args, **kwargs):
        calls.append((name, pretrained))
        return vit_b16

    monkeypatch.setattr(upt.backbone, "load_backbone", load)
    assert build_parser().parse_args(["list"]).backbone == RunConfig.backbone == "ViT-B-16"
    capsys.readouterr()
    assert main(["list", "methods"]) == 0
    lines = _stdout_lines(capsys)
    assert calls == [("ViT-B-16", None)]
    assert lines[0] == "trainable parameters for 100 classes on ViT-B-16's architecture (random weights, no download):"
    rows = {line.split()[0]: line.split()[1] for line in lines[2:] if not line.startswith(" ")}
    assert rows == {r["name"]: r["trainable"] for r in describe_methods(vit_b16, 100)}
    assert rows["maple"] == "3,555,072" and max(map(len, lines)) <= 100


@pytest.mark.parametrize("backbone", ["tiny", "RN50"])
def test_list_methods_fits_100_columns(capsys, backbone):
    capsys.readouterr()
    assert main(["list", "methods", "--backbone", backbone]) == 0
    lines = _stdout_lines(capsys)
    assert max(map(len, lines)) <= 100
    assert lines[0] == f"trainable parameters for 100 classes on {backbone}'s architecture (random weights, no download):"
    assert [line.split()[:2] for line in lines if line.startswith(("maple ", "vpt "))] == (
        [["maple", "n/a"], ["vpt", "n/a" if backbone == "RN50" else "512"]])
    text = " ".join(" ".join(lines).split())
    reason = "MaPLe depth 9 exceeds the 2 layers of backbone 'tiny'" if backbone == "tiny" else (
        "MaPLe needs visual-prompt seams, which backbone 'RN50' (ModifiedResNet) does not expose")
    assert f"[n/a: {reason}" in text


def test_describe_methods_separates_counts_from_reasons(tiny):
    from upt.methods import describe_methods

    rows = {r["name"]: r for r in describe_methods(tiny)}
    assert rows["maple"]["trainable"] == "n/a" and rows["maple"]["note"].startswith("MaPLe depth 9 exceeds")
    assert rows["coop"]["trainable"] == "1,024" and rows["coop"]["note"] == ""


# --- 15. which methods each backbone can run -------------------------------------------------------
TEXT_ONLY, VISUAL_ONLY, NEITHER = (
    "zeroshot, linear-probe, coop, cocoop, kgcoop, tip-adapter, tip-adapter-f",
    "zeroshot, linear-probe, vpt, tip-adapter, tip-adapter-f", "zeroshot, linear-probe, tip-adapter, tip-adapter-f")


def test_list_backbones_names_the_methods(capsys, monkeypatch):
    from upt.backbone import list_backbones

    def no_building(*args, **kwargs):
        raise AssertionError("list_backbones built a model")

    monkeypatch.setattr(open_clip, "create_model", no_building)
    rows = {r["name"]: r for r in list_backbones()}
    assert {n: rows[n]["methods"] for n in ("tiny", "ViT-B-16", "ViT-L-14-quickgelu", "RN50", "RN50x64",
                                            "convnext_base", "coca_ViT-B-32", "coca_base", "EVA02-B-16",
                                            "ViT-B-16-SigLIP", "ViT-L-14-CLIPA")} == {
        "tiny": "all", "ViT-B-16": "all", "ViT-L-14-quickgelu": "all", "RN50": TEXT_ONLY, "RN50x64": TEXT_ONLY,
        "convnext_base": TEXT_ONLY, "coca_ViT-B-32": NEITHER, "coca_base": VISUAL_ONLY, "EVA02-B-16": NEITHER,
        "ViT-B-16-SigLIP": NEITHER, "ViT-L-14-CLIPA": NEITHER}
    assert rows["tiny"]["pretrained"] == "(random init, no download)" and "openai" in rows["ViT-B-16"]["pretrained"]
    capsys.readouterr()
    assert main(["list", "backbones"]) == 0
    lines = _stdout_lines(capsys)
    assert lines[0].split() == ["name", "methods", "pretrained"] and max(map(len, lines)) <= 100


def test_method_support_reason_is_one_sentence():
    assert method_support("RN50")["vpt"] == (
        "vpt needs visual-prompt seams, which backbone 'RN50' lacks (a ResNet image tower); use a CLIP ViT such as "
        "ViT-B-16, or a method it supports (zeroshot, linear-probe, coop, cocoop, kgcoop, tip-adapter, tip-adapter-f).")
    assert method_support("coca_ViT-B-32")["upt"].startswith(
        "upt needs text- and visual-prompt seams, which backbone 'coca_ViT-B-32' lacks (CoCa's text tower; an image "
        "tower not pooled on its class token);")
    assert set(method_support("ViT-B-16").values()) == {None}
    with pytest.raises(UptError, match="^Unknown backbone 'RN5O'"):
        method_support("RN5O")


def test_info_backbone_names_the_methods(capsys):
    capsys.readouterr()
    assert main(["info", "backbone", "RN50"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["methods"] == ["zeroshot", "linear-probe", "coop", "cocoop", "kgcoop", "tip-adapter", "tip-adapter-f"]
    assert info["unsupported_methods"] == {m: method_support("RN50")[m]
                                           for m in ("vpt", "maple", "upt", "promptsrc", "clip-lora")}


def test_seam_table_covers_every_method():
    assert set(METHOD_SEAMS) == set(REGISTRY)


@pytest.mark.parametrize("name", ["ViT-B-16", "RN50", "coca_base", "coca_ViT-B-32", "MobileCLIP-S1", "ViT-L-14-CLIPA"])
def test_config_rule_matches_the_built_towers(name):
    """What method_support reads off the config is what the towers find on the model (built on meta)."""
    model = open_clip.create_model(name, device="meta")
    built = {"text": TextTower(model, None, name).supports_prompts, "visual": VisionTower(model, name).supports_prompts}
    support = method_support(name)
    assert {m: support[m] is None for m in METHOD_SEAMS} == {
        m: all(built[s] for s in seams) for m, seams in METHOD_SEAMS.items()}


def _backbone(model, name: str) -> Backbone:
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    return Backbone(name, None, model.eval().requires_grad_(False), TextTower(model, tokenizer, name),
                    VisionTower(model, name), Preprocess((0.5,) * 3, (0.5,) * 3, 32))


@pytest.fixture(scope="module")
def seamless() -> dict[str, Backbone]:
    """Tiny backbones each lacking one kind of seam: a ResNet image tower, a custom text tower."""
    cfg = BUILTIN_CONFIGS["tiny"]
    torch.manual_seed(0)
    resnet = open_clip.CLIP(64, {"layers": [1, 1, 1, 1], "width": 16, "image_size": 32}, cfg["text_cfg"])
    custom = open_clip.CustomTextCLIP(64, cfg["vision_cfg"], cfg["text_cfg"])
    return {"visual": _backbone(resnet, "tiny-resnet"), "text": _backbone(custom, "tiny-custom-text")}


@pytest.mark.parametrize("method", sorted(REGISTRY))
@pytest.mark.parametrize("lacking", ["text", "visual"])
def test_seam_table_matches_the_methods(seamless, method, lacking):
    """A method refuses a backbone without a seam exactly when METHOD_SEAMS says it needs that seam."""
    from upt.methods import build_method

    config = {"depth": 1} if method == "maple" else None
    try:
        build_method(method, seamless[lacking], ["cat", "dog"], config=config)
        refused = False
    except UptError as exc:
        assert f"needs {lacking}-prompt seams" in str(exc)
        refused = True
    assert refused == (lacking in METHOD_SEAMS[method])


def test_train_refuses_a_method_the_backbone_cannot_run_before_anything_else(tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "run"
    assert main(["train", "--method", "vpt", "--backbone", "RN50", "--pretrained", "none",
                 "--dataset", f"folder:{tmp_path / 'no-such-folder'}", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"upt: error: {method_support('RN50')['vpt']}"
    assert not out.exists()
