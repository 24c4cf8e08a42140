"""Hostile run folders: damaged files, permissions, full disks and read-only folders.

Each problem ends in one sentence naming the file (the CLI prints it as one line and exits 2,
``Predictor`` raises it as UptError), and nothing the user had is lost or changed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from helpers import shared_path
from upt.cli import main
from upt.engine import checkpoint
from upt.errors import UptError

TINY = ["--backbone", "tiny", "--workers", "0", "--shots", "2", "--seed", "1", "--epochs", "2", "--batch-size", "4"]
FIX = "the file is damaged: restore it or train the run again."


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A trained CoOp run and a linear-probe run (class-dependent tensors), written under umask 0o022."""
    flowers = f"folder:{shared_path('data', 'flowers5')}"
    root = tmp_path_factory.mktemp("runs")
    old = os.umask(0o022)
    try:
        for method in ("coop", "linear-probe"):
            assert main(["train", "--method", method, "--dataset", flowers, *TINY, "--out", str(root / method)]) == 0
    finally:
        os.umask(old)
    return {"coop": root / "coop", "linear-probe": root / "linear-probe"}


@pytest.fixture
def image() -> str:
    return str(sorted((shared_path("data", "flowers5") / "rose").iterdir())[0])


def _copy(runs: dict[str, Path], method: str, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(runs[method], run)
    return run


def _cli_error(argv: list[str], capsys) -> str:
    """Run the CLI, check it failed with one line, and return that line without its prefix."""
    capsys.readouterr()
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("upt: error: ")]
    assert len(err) == 1, err
    return err[0].removeprefix("upt: error: ")


def _everywhere(run: Path, image: str, capsys) -> str:
    """The one message `upt eval`, `upt predict` and `Predictor` all give for ``run``."""
    from upt import Predictor

    by_eval = _cli_error(["eval", "--run", str(run), "--device", "cpu"], capsys)
    by_predict = _cli_error(["predict", "--run", str(run), "--device", "cpu", image], capsys)
    with pytest.raises(UptError) as caught:
        Predictor(run, device="cpu")
    assert by_eval == by_predict == str(caught.value)
    assert "\n" not in by_eval
    return by_eval


def _edit_meta(run: Path, edit) -> None:
    path = run / "upt.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _deep_json(levels: int = 200_000) -> str:
    return "[" * levels + "]" * levels


# --- 10. damaged run folders --------------------------------------------------------------------
@pytest.mark.parametrize("keep", [100, -8], ids=["header", "data"])
def test_truncated_prompt_names_the_file(runs, tmp_path, image, capsys, keep):
    run = _copy(runs, "coop", tmp_path)
    prompt = run / "prompt.safetensors"
    prompt.write_bytes(prompt.read_bytes()[:keep])
    with pytest.raises(SafetensorError) as raw:
        load_file(str(prompt))
    assert _everywhere(run, image, capsys) == (
        f"{prompt} is not a readable safetensors file ({raw.value}); restore it or train the run again."
    )


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_pickle_renamed_to_safetensors_is_refused(runs, tmp_path, image, capsys, zipfile):
    run = _copy(runs, "coop", tmp_path)
    prompt = run / "prompt.safetensors"
    # Fresh tensors: those of load_file may map the very file torch.save is about to truncate.
    torch.save({"ctx": torch.zeros(16, 64)}, prompt, _use_new_zipfile_serialization=zipfile)
    assert _everywhere(run, image, capsys) == (
        f"{prompt} is a pickle (torch.save) file, not safetensors, and upt never loads pickles; "
        "restore it or train the run again."
    )


def test_empty_prompt_names_the_file(runs, tmp_path, image, capsys):
    run = _copy(runs, "coop", tmp_path)
    (run / "prompt.safetensors").write_bytes(b"")
    assert _everywhere(run, image, capsys) == f"{run}/prompt.safetensors is empty; restore it or train the run again."


@pytest.mark.parametrize("key", ["classnames", "backbone", "method", "method_config", "template"])
def test_meta_without_a_key_names_the_file_and_key(runs, tmp_path, image, capsys, key):
    run = _copy(runs, "coop", tmp_path)
    _edit_meta(run, lambda meta: {k: v for k, v in meta.items() if k != key})
    assert _everywhere(run, image, capsys) == f"{run}/upt.json has no '{key}' entry; {FIX}"


@pytest.mark.parametrize(("value", "kind"), [([1, 2], "a list"), (3, "a number"), ("coop", "a string")])
def test_meta_that_is_not_a_mapping_names_the_file(runs, tmp_path, image, capsys, value, kind):
    run = _copy(runs, "coop", tmp_path)
    _edit_meta(run, lambda meta: value)
    assert _everywhere(run, image, capsys) == f"{run}/upt.json holds {kind} at top level, not the mapping upt writes; {FIX}"


def test_meta_entry_of_the_wrong_type_names_the_file(runs, tmp_path, image, capsys):
    run = _copy(runs, "coop", tmp_path)
    _edit_meta(run, lambda meta: {**meta, "classnames": "daisy,rose"})
    assert _everywhere(run, image, capsys) == f"{run}/upt.json holds a string as 'classnames', not a list; {FIX}"


def test_cut_classnames_shape_mismatch_names_both_files(runs, tmp_path, image, capsys):
    run = _copy(runs, "linear-probe", tmp_path)
    _edit_meta(run, lambda meta: {**meta, "classnames": meta["classnames"][:3]})
    assert _everywhere(run, image, capsys) == (
        f"{run}/prompt.safetensors does not fit the method {run}/upt.json describes: Tensor 'bias' has shape (5,) "
        "in the checkpoint but (3,) here: it was trained with another backbone or config."
    )


def test_unknown_method_in_meta_names_the_file(runs, tmp_path, image, capsys):
    run = _copy(runs, "coop", tmp_path)
    _edit_meta(run, lambda meta: {**meta, "method": "coopp"})
    message = _everywhere(run, image, capsys)
    assert message.startswith(f"{run}/upt.json describes a method this version cannot build: Unknown method 'coopp'.")


def test_deeply_nested_meta_is_one_line(runs, tmp_path, image, capsys):
    run = _copy(runs, "coop", tmp_path)
    (run / "upt.json").write_text(_deep_json())
    assert _everywhere(run, image, capsys) == f"{run}/upt.json nests its JSON too deeply to read; the file is damaged."


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- coop\n- flowers\n", "holds a list, not a mapping of settings"),
        ("42\n", "holds a number, not a mapping of settings"),
        ("", "holds null, not a mapping of settings"),
        ("method: [coop\n", "is not valid YAML (expected ',' or ']', but got '<stream end>' at line 2, column 1)"),
        (_deep_json(), "nests its YAML too deeply to read"),
    ],
    ids=["list", "number", "empty", "invalid", "deep"],
)
def test_damaged_config_yaml_names_the_file(runs, tmp_path, capsys, text, problem):
    run = _copy(runs, "coop", tmp_path)
    (run / "config.yaml").write_text(text)
    assert _cli_error(["eval", "--run", str(run), "--device", "cpu"], capsys) == f"{run}/config.yaml {problem}; {FIX}"


def test_config_yaml_with_an_unknown_key_names_the_file(runs, tmp_path, capsys):
    run = _copy(runs, "coop", tmp_path)
    with open(run / "config.yaml", "a") as f:
        f.write("bogus: 1\n")
    message = _cli_error(["eval", "--run", str(run), "--device", "cpu"], capsys)
    assert message.startswith(f"{run}/config.yaml is not a valid run config: Unknown config key(s) ['bogus'];")


def test_run_folder_that_is_a_file(tmp_path, image, capsys):
    (tmp_path / "run").write_text("not a folder")
    assert _cli_error(["predict", "--run", str(tmp_path / "run"), image], capsys) == (
        f"Run folder {tmp_path}/run is a file, not a folder; pass the folder written by upt train."
    )


# --- 15. read_json on anything deep or undecodable ------------------------------------------------
def test_read_json_deeply_nested_is_one_sentence(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(_deep_json())
    with pytest.raises(UptError) as caught:
        checkpoint.read_json(path)
    assert str(caught.value) == f"{path} nests its JSON too deeply to read; the file is damaged."


def test_read_json_not_utf8_is_one_sentence(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b'{"epoch": "\xff"}')
    with pytest.raises(UptError) as caught:
        checkpoint.read_json(path)
    assert str(caught.value) == f"{path} is not UTF-8 text (invalid start byte at byte 11); the file is damaged."


# --- 13. file permissions follow the umask ------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_files_follow_the_umask(runs, tmp_path, capsys):
    run = runs["coop"]
    written = ["results.json", "upt.json", "prompt.safetensors", "checkpoint/state.safetensors"]
    assert {f: oct(_mode(run / f)) for f in written} == {f: oct(0o644) for f in written}
    out = tmp_path / "record.json"
    old = os.umask(0o022)
    try:
        assert main(["eval", "--run", str(run), "--device", "cpu", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    assert oct(_mode(out)) == oct(0o644)


def test_atomic_write_honours_the_umask(tmp_path):
    modes = {}
    for umask in (0o022, 0o002, 0o077):
        old = os.umask(umask)
        try:
            checkpoint.write_json(tmp_path / f"{umask:o}.json", {"a": 1})
            checkpoint.save_tensors(tmp_path / f"{umask:o}.safetensors", {"x": torch.zeros(2)})
        finally:
            os.umask(old)
        modes[oct(umask)] = {oct(_mode(tmp_path / f"{umask:o}.{ext}")) for ext in ("json", "safetensors")}
    assert modes == {"0o22": {"0o644"}, "0o2": {"0o664"}, "0o77": {"0o600"}}


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{}")
    path.chmod(0o640)
    old = os.umask(0o022)
    try:
        checkpoint.write_json(path, {"a": 1})
    finally:
        os.umask(old)
    assert oct(_mode(path)) == oct(0o640) and json.loads(path.read_text()) == {"a": 1}


# --- 14. full disks and read-only folders --------------------------------------------------------
def _no_space(*args) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _disk_full(path, data: bytes) -> None:
    """A writer that gets half the data onto the disk before it is full."""
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    _no_space()


WRITERS = {
    "json": ("results.json", lambda p: checkpoint.write_json(p, {"accuracy": 99.0})),
    "tensors": ("prompt.safetensors", lambda p: checkpoint.save_tensors(p, {"ctx": torch.ones(4)})),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize("where", ["write", "fsync"])
def test_disk_full_keeps_the_previous_version(tmp_path, monkeypatch, kind, where):
    name, write = WRITERS[kind]
    path = tmp_path / name
    path.write_bytes(b"previous version")
    if where == "write":  # half the data reaches the temporary file, then the disk is full
        monkeypatch.setattr(checkpoint, "_write_file", _disk_full, raising=False)
    else:  # the data is written, the flush to disk reports the full disk
        monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(UptError) as caught:
        write(path)
    assert str(caught.value) == f"Cannot write {path} (No space left on device); its previous version, if any, is unchanged."
    assert path.read_bytes() == b"previous version"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # the temporary file is gone


def test_eval_on_a_full_disk_keeps_the_previous_record(runs, tmp_path, monkeypatch, capsys):
    run = _copy(runs, "coop", tmp_path)
    assert main(["eval", "--run", str(run), "--device", "cpu"]) == 0
    (record,) = (run / "eval").iterdir()
    before = record.read_bytes()
    monkeypatch.setattr(checkpoint, "_write_file", _disk_full, raising=False)
    assert _cli_error(["eval", "--run", str(run), "--device", "cpu"], capsys) == (
        f"Cannot write {record} (No space left on device); its previous version, if any, is unchanged."
    )
    assert record.read_bytes() == before and [p.name for p in (run / "eval").iterdir()] == [record.name]


def _read_only(monkeypatch, folder: Path, calls: list) -> None:
    """Make ``folder`` read-only to the write check and count evaluations (root ignores chmod)."""
    import upt.engine.run as run_module

    real_probe, real_evaluate = getattr(checkpoint, "_probe_folder", None), run_module.evaluate_split

    def probe(path):
        if Path(path) == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        if real_probe is not None:
            real_probe(path)

    def evaluate(*args, **kwargs):
        calls.append(1)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "_probe_folder", probe, raising=False)
    monkeypatch.setattr(run_module, "evaluate_split", evaluate)


def _expected_read_only(run: Path) -> str:
    record = run / "eval" / f"folder_{str(shared_path('data', 'flowers5')).replace('/', '_')}-all.json"
    return (f"Folder {run} is read-only (Permission denied), so {record} cannot be written; "
            "pass --out FILE to write the evaluation record elsewhere.")


def test_eval_on_a_read_only_run_stops_before_evaluating(runs, tmp_path, monkeypatch, capsys):
    run = _copy(runs, "coop", tmp_path)
    calls: list = []
    _read_only(monkeypatch, run, calls)
    assert _cli_error(["eval", "--run", str(run), "--device", "cpu"], capsys) == _expected_read_only(run)
    assert calls == [] and not (run / "eval").exists()


def test_eval_out_writes_the_record_elsewhere(runs, tmp_path, monkeypatch, capsys):
    run = _copy(runs, "coop", tmp_path)
    calls: list = []
    _read_only(monkeypatch, run, calls)
    out = tmp_path / "records" / "flowers.json"
    assert main(["eval", "--run", str(run), "--device", "cpu", "--out", str(out)]) == 0
    record, results = json.loads(out.read_text()), json.loads((run / "results.json").read_text())
    assert calls == [1] and not (run / "eval").exists()
    assert record["run"] == str(run) and record["accuracy"] == results["accuracy"]
    assert record["per_class_accuracy"] == results["per_class_accuracy"]


def test_eval_out_that_is_a_folder_is_refused(runs, tmp_path, capsys):
    run = _copy(runs, "coop", tmp_path)
    assert _cli_error(["eval", "--run", str(run), "--device", "cpu", "--out", str(tmp_path)], capsys) == (
        f"--out {tmp_path} is a folder; give the name of the file to write the evaluation record to."
    )


def test_eval_on_a_chmod_read_only_run_folder(runs, tmp_path, capsys):
    run = _copy(runs, "coop", tmp_path)
    run.chmod(0o555)
    try:
        if os.access(run, os.W_OK):
            pytest.skip("chmod 0o555 does not stop this user (root) from writing; the monkeypatched test covers it")
        message = _cli_error(["eval", "--run", str(run), "--device", "cpu"], capsys)
    finally:
        run.chmod(0o755)
    assert message == _expected_read_only(run)
    assert not (run / "eval").exists()
