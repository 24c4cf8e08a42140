"""`upt push` and `hf-hub:` runs, offline: the model card and upload folder are built and checked
without a network; loading goes through a Hugging Face cache laid out here with HF_HUB_OFFLINE; a
push without a token or a network is one clear sentence."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, constants

from helpers import shared_path
from upt.cli import build_parser, main
from upt.errors import UptError
from upt.hub import PUSH_FILES, base_model_repo, build_upload_folder, push_run, resolve_run

REPO_ID = "someone/upt-flowers"
TRAIN = ["--backbone", "tiny", "--workers", "0", "--seed", "1", "--shots", "1", "--epochs", "1", "--batch-size", "5",
         "--set", "optim.warmup_epochs=0"]


@pytest.fixture(scope="module")
def flowers() -> Path:
    return shared_path("data", "flowers5")


@pytest.fixture(scope="module")
def run(tmp_path_factory, flowers) -> Path:
    out = tmp_path_factory.mktemp("runs") / "upt"
    assert main(["train", "--method", "upt", "--dataset", f"folder:{flowers}", *TRAIN, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def staged(tmp_path_factory, run) -> Path:
    folder = tmp_path_factory.mktemp("staged")
    build_upload_folder(run, folder, REPO_ID)
    return folder


@pytest.fixture(scope="module")
def photos(flowers) -> list[str]:
    return [str(sorted((flowers / c).iterdir())[0]) for c in ("daisy", "rose", "tulip")]


# --- the upload folder and its model card ----------------------------------------------------
def test_upload_folder_holds_what_loading_needs_and_a_model_card(run, staged):
    assert sorted(p.name for p in staged.iterdir()) == sorted([*PUSH_FILES, "README.md"])
    for name in PUSH_FILES:
        assert (staged / name).read_bytes() == (run / name).read_bytes()
    card = ModelCard.load(staged / "README.md")
    assert card.data.library_name == "upt" and card.data.license == "mit"
    assert card.data.pipeline_tag == "image-classification"
    assert {"upt", "clip", "open_clip", "prompt-tuning"} <= set(card.data.tags)
    assert card.data.base_model is None  # the tiny backbone has random weights


def test_model_card_states_the_run_and_its_per_class_accuracy(run, staged):
    text = (staged / "README.md").read_text()
    results = json.loads((run / "results.json").read_text())
    assert f"| Accuracy | {results['accuracy']:.2f} % on the test split of `{results['dataset']}` (90 images), " \
           f"macro-F1 {results['macro_f1']:.2f} |" in text
    assert "| Backbone | tiny (QuickGELU), weights none (random) |" in text
    assert "| Shots | 1 per class |" in text and "| Seed | 1 |" in text
    assert f"| upt version | {results['versions']['upt']} |" in text
    table = re.findall(r"^\| (\w+) \| (\d+\.\d\d) \| (\d+) \|$", text, re.M)
    assert table == [(r["class"], f"{r['accuracy']:.2f}", str(r["n_images"])) for r in results["per_class_accuracy"]]
    assert len(table) == 5
    assert f'Predictor("hf-hub:{REPO_ID}")' in text and "released under the `mit` license" in text


def test_the_cards_command_reproduces_the_runs_config(run, staged, monkeypatch):
    from upt.commands.train import config_from_args
    from upt.engine.config import config_text, fill_defaults

    command = re.search(r"```bash\n(upt train [^\n]*)\n```", (staged / "README.md").read_text()).group(1)
    assert command == "upt train --config config.yaml --out runs/upt-flowers"
    monkeypatch.chdir(staged)
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert config_text(fill_defaults(config_from_args(args))) == (run / "config.yaml").read_text()


def test_base_model_names_the_hub_copy_of_the_clip_weights():
    assert base_model_repo("ViT-B-16", "openai") == "timm/vit_base_patch16_clip_224.openai"
    assert base_model_repo("hf-hub:org/clip", None) == "org/clip"
    assert base_model_repo("tiny", None) is None and base_model_repo("ViT-B-16", None) is None


def test_push_dry_run_writes_the_folder_and_uploads_nothing(run, tmp_path, capsys):
    out = tmp_path / "stage"
    assert main(["push", "--run", str(run), "--repo", REPO_ID, "--license", "apache-2.0", "--dry-run", str(out)]) == 0
    assert capsys.readouterr().out.strip() == (f"wrote prompt.safetensors, upt.json, config.yaml, results.json, "
                                               f"README.md to {out}; nothing uploaded")
    assert ModelCard.load(out / "README.md").data.license == "apache-2.0"


# --- pushing without a token or a network ------------------------------------------------------
@pytest.fixture
def no_token(monkeypatch, tmp_path):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))


def test_push_without_a_token_says_how_to_log_in(run, no_token, capsys):
    with pytest.raises(UptError, match=r"^Pushing to the Hugging Face Hub needs a token: log in with `hf auth login` "
                                       r"or set HF_TOKEN\.$"):
        push_run(run, REPO_ID)
    assert main(["push", "--run", str(run), "--repo", REPO_ID]) == 2
    assert capsys.readouterr().err == ("upt: error: Pushing to the Hugging Face Hub needs a token: log in with "
                                       "`hf auth login` or set HF_TOKEN.\n")


def test_push_without_a_network_is_one_sentence(run, no_token, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UptError, match=r"^Cannot reach the Hugging Face Hub to push someone/upt-flowers \(.*offline "
                                       r"mode is enabled.*\); check the network connection"):
        push_run(run, REPO_ID)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with socket.socket() as s:  # a port nothing listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(UptError, match=r"^Cannot reach the Hugging Face Hub to push someone/upt-flowers \(.*refused"):
        push_run(run, REPO_ID)


def test_push_refuses_bad_names_and_folders(run, tmp_path, no_token):
    with pytest.raises(UptError, match="'someone/upt flowers' is not a Hugging Face Hub model name"):
        push_run(run, "someone/upt flowers")
    with pytest.raises(UptError, match="config.yaml is missing"):
        push_run(tmp_path, REPO_ID)


# --- loading hf-hub: runs from the cache ---------------------------------------------------------
def lay_out_cache(cache: Path, repo_id: str, files: Path) -> str:
    """A Hugging Face hub cache holding ``files`` as the ``main`` revision of model ``repo_id``, laid out as
    huggingface_hub lays it out: ``models--user--name/{blobs/<hash>, snapshots/<commit>/<file> -> blob,
    refs/main = <commit>}``. Returns the commit."""
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = storage / "snapshots" / commit
    (storage / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in sorted(files.iterdir()):
        data = path.read_bytes()
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(commit)
    return commit


@pytest.fixture
def hub_cache(tmp_path, staged, monkeypatch) -> tuple[Path, str]:
    """An offline Hub cache holding the run as ``REPO_ID`` (huggingface_hub read the environment at import,
    so its constants are set too)."""
    cache = tmp_path / "hub"
    commit = lay_out_cache(cache, REPO_ID, staged)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache, commit


def test_predictor_loads_a_hub_run_from_the_cache(run, hub_cache, photos):
    from upt import Predictor

    cache, commit = hub_cache
    assert resolve_run(f"hf-hub:{REPO_ID}") == cache / "models--someone--upt-flowers" / "snapshots" / commit
    hub = Predictor(f"hf-hub:{REPO_ID}", device="cpu")
    local = Predictor(run, device="cpu")
    assert list(hub.predict(photos, topk=5)) == list(local.predict(photos, topk=5))
    pinned = Predictor(f"hf-hub:{REPO_ID}@{commit}", device="cpu")
    assert list(pinned.predict(photos, topk=2)) == list(local.predict(photos, topk=2))


def test_predict_and_eval_commands_take_a_hub_run(run, hub_cache, photos, tmp_path, capsys):
    assert main(["predict", "--run", str(run), "--device", "cpu", "--topk", "3", *photos]) == 0
    local = capsys.readouterr().out
    assert main(["predict", "--run", f"hf-hub:{REPO_ID}", "--device", "cpu", "--topk", "3", *photos]) == 0
    assert capsys.readouterr().out == local and len(local.splitlines()) == 3
    record = tmp_path / "eval.json"
    assert main(["eval", "--run", f"hf-hub:{REPO_ID}", "--device", "cpu", "--json", "--out", str(record)]) == 0
    printed = json.loads(capsys.readouterr().out)
    results = json.loads((run / "results.json").read_text())
    assert printed["run"] == f"hf-hub:{REPO_ID}" and printed["record"] == str(record)
    assert (printed["accuracy"], printed["n_images"]) == (round(results["accuracy"], 2), results["n_images"])
    assert json.loads(record.read_text())["accuracy"] == results["accuracy"]


def test_the_command_line_reads_the_cache_from_the_environment(run, hub_cache, photos, capsys):
    assert main(["predict", "--run", str(run), "--device", "cpu", "--topk", "2", photos[0]]) == 0
    local = capsys.readouterr().out
    done = subprocess.run([sys.executable, "-m", "upt", "predict", "--run", f"hf-hub:{REPO_ID}", "--device", "cpu",
                           "--topk", "2", photos[0]], capture_output=True, text=True, timeout=300)  # env: hub_cache
    assert done.returncode == 0, done.stderr
    assert done.stdout == local


def test_hub_runs_that_cannot_be_loaded_are_one_sentence(hub_cache, tmp_path):
    cache, _ = hub_cache
    with pytest.raises(UptError, match=r"^hf-hub:someone/elsewhere is not in the local Hugging Face cache \(.*\) and "
                                       r"HF_HUB_OFFLINE is set; download it once with a network connection\.$"):
        resolve_run("hf-hub:someone/elsewhere")
    with pytest.raises(UptError, match="'hf-hub:someone/a/b' is not a Hugging Face Hub model name"):
        resolve_run("hf-hub:someone/a/b")
    other = tmp_path / "other"
    other.mkdir()
    (other / "weights.bin").write_bytes(b"\0")
    lay_out_cache(cache, "someone/not-a-run", other)
    with pytest.raises(UptError, match=r"^hf-hub:someone/not-a-run holds no upt run \(no upt.json\)"):
        resolve_run("hf-hub:someone/not-a-run")
    assert resolve_run(tmp_path) == tmp_path  # a folder stays a folder
