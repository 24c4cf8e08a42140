"""A run folder: preparing it, describing the trained method, loading it back.

Loading needs nothing but the folder: ``upt.json`` names the method, its config, the backbone and
the class names, and ``prompt.safetensors`` holds the trained tensors.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
import yaml

from upt.engine.checkpoint import (
    META_FILE,
    PROMPT_FILE,
    RESUME_DIR,
    check_writable,
    load_tensors,
    one_line,
    read_json,
    read_parsed,
    value_kind,
    versions,
)
from upt.errors import UptError

log = logging.getLogger(__name__)
RUN_FILES = (PROMPT_FILE, META_FILE, "config.yaml", "results.json", "log.txt", "metrics.jsonl", RESUME_DIR, "eval")
# A folder holds a run once training has produced something: a checkpoint, trained tensors or
# results. A run that failed before its first checkpoint (leaving upt.json, config.yaml and its log)
# does not block the same command from running again.
RUN_MARKERS = (PROMPT_FILE, "results.json", RESUME_DIR)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UptError(f"Unknown device '{name}'; use auto, cpu, cuda or cuda:N.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UptError(f"Device '{name}' asked for, but this machine has no CUDA GPU; use --device cpu.")
    return device


def prepare_run_dir(out: str | Path, resume: bool, overwrite: bool) -> Path:
    """Create (or reuse, with ``resume``) the run folder; refuse to mix two runs in one folder."""
    out = Path(out)
    existing = out.exists() and any((out / f).exists() for f in RUN_MARKERS)
    if existing and not resume:
        if not overwrite:
            raise UptError(f"Run folder {out} already holds a run; pass --resume to continue it or --overwrite to "
                           "replace it.")
        for f in RUN_FILES:
            p = out / f
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UptError(f"Cannot write to run folder {out} ({exc.strerror}); choose another --out.") from exc
    return out


def describe_run(method, backbone, cfg, splits) -> dict:
    """The content of ``upt.json``: enough to rebuild the trained method from the folder alone."""
    import dataclasses

    return {
        "format": 1,
        "method": method.name,
        "method_config": dataclasses.asdict(method.config),
        "backbone": backbone.describe(),
        "classnames": list(method.classnames),
        "template": method.template,
        "ensemble_with_template": method.ensemble_with_template,
        "dataset": cfg.dataset,
        "classes": cfg.classes,
        "shots": cfg.shots,
        "seed": cfg.seed,
        "precision": cfg.precision,
        "versions": versions(),
    }


def write_config(out: Path, cfg) -> None:
    from upt.engine.config import config_text

    (out / "config.yaml").write_text(config_text(cfg))


def require_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` as a Path, or one UptError when it is missing or not a folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        problem = "is a file, not a folder" if run_dir.exists() else "does not exist"
        raise UptError(f"Run folder {run_dir} {problem}; pass the folder written by upt train.")
    return run_dir


def load_run(run_dir: str | Path, device: str = "auto", backbone: str | None = None,
             pretrained: str | None = None):
    """Rebuild the trained method of a run folder.

    Args:
        run_dir: the run folder.
        device: where to put it.
        backbone, pretrained: when given, must match what the run was trained with.

    Returns:
        (method, meta): the method in eval mode and the content of ``upt.json``.

    Raises:
        UptError: one sentence naming the file, for a damaged or foreign ``upt.json`` or
            ``prompt.safetensors``, or tensors that do not fit the method it describes.
    """
    run_dir = require_run_dir(run_dir)
    meta = read_meta(run_dir)
    need = meta["backbone"]
    if (backbone and backbone != need["name"]) or (pretrained and pretrained != need["pretrained"]):
        raise UptError(
            f"Run {run_dir} was trained on backbone {need['name']} (pretrained {need['pretrained'] or 'none'}); it "
            f"cannot be used with {backbone or need['name']} (pretrained {pretrained or need['pretrained'] or 'none'}). "
            f"Use --backbone {need['name']}" + (f" --pretrained {need['pretrained']}." if need["pretrained"] else ".")
        )
    bb = _load_recorded_backbone(need, run_dir / META_FILE, resolve_device(device))
    check_same_backbone(need, bb, run_dir)
    method = _build_recorded_method(meta, bb, run_dir)
    method.eval()
    return method, meta


# What load_run reads from upt.json, and the JSON type each entry must have.
META_ENTRIES = {"method": str, "method_config": dict, "backbone": dict, "classnames": list, "template": str}


def read_meta(run_dir: Path) -> dict:
    """``upt.json`` of a run, checked to hold what :func:`load_run` needs; a problem names the file."""
    path = run_dir / META_FILE
    meta = read_json(path)
    fix = "the file is damaged: restore it or train the run again."
    if not isinstance(meta, dict):
        raise UptError(f"{path} holds {value_kind(meta)} at top level, not the mapping upt writes; {fix}")
    for key, kind in META_ENTRIES.items():
        if key not in meta:
            raise UptError(f"{path} has no '{key}' entry; {fix}")
        if not isinstance(meta[key], kind):
            raise UptError(f"{path} holds {value_kind(meta[key])} as '{key}', not {value_kind(kind())}; {fix}")
    names, need = meta["classnames"], meta["backbone"]
    if not names or not all(isinstance(c, str) and c.strip() for c in names):
        raise UptError(f"{path} lists no class names, or one that is not a non-empty string; {fix}")
    if not isinstance(need.get("name"), str) or not isinstance(need.get("pretrained", ...), str | None):
        raise UptError(f"{path} records no backbone 'name' and 'pretrained' (text, or null for none); {fix}")
    for entries, key in ((need, "quick_gelu"), (meta, "ensemble_with_template")):  # both optional
        if not isinstance(entries.get(key, True), bool):
            raise UptError(f"{path} holds {value_kind(entries[key])} as '{key}', not true or false; {fix}")
    return meta


def _load_recorded_backbone(need: dict, meta_path: Path, device: torch.device):
    """The backbone ``upt.json`` records, or one UptError naming the file when it cannot be built."""
    from upt.backbone import load_backbone
    from upt.backbone.configs import model_config

    try:
        # Runs recorded before the activation was stored were built with the model config's own.
        quick_gelu = need.get("quick_gelu", model_config(need["name"]).get("quick_gelu", False))
        return load_backbone(need["name"], need["pretrained"], device, quick_gelu=quick_gelu)
    except UptError as exc:
        raise UptError(f"The backbone recorded in {meta_path} cannot be loaded: {exc}") from exc


def _build_recorded_method(meta: dict, bb, run_dir: Path):
    """The method ``upt.json`` describes with the tensors of ``prompt.safetensors``; problems name the file."""
    from upt.methods import build_method

    meta_path, prompt_path = run_dir / META_FILE, run_dir / PROMPT_FILE
    try:
        method = build_method(meta["method"], bb, meta["classnames"], meta["template"], meta["method_config"],
                              meta.get("ensemble_with_template", True))
    except UptError as exc:
        raise UptError(f"{meta_path} describes a method this version cannot build: {exc}") from exc
    tensors = load_tensors(prompt_path, bb.device)
    try:
        method.load_trainable_state_dict(tensors)
    except UptError as exc:
        raise UptError(f"{prompt_path} does not fit the method {meta_path} describes: {exc}") from exc
    return method


def read_run_config(run_dir: Path):
    """``config.yaml`` of a run as a RunConfig; a damaged or foreign file is one UptError naming it."""
    from upt.engine.config import from_dict

    run_dir = require_run_dir(run_dir)
    path = run_dir / "config.yaml"
    values = read_yaml_mapping(path, f"is {run_dir} a upt run folder?")
    try:
        return from_dict(values)
    except UptError as exc:
        raise UptError(f"{path} is not a valid run config: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise UptError(f"{path} is not a valid run config ({one_line(str(exc))}).") from exc


def read_yaml_mapping(path: Path, missing_hint: str) -> dict:
    """Parse a YAML file that must hold a mapping; every problem is one UptError naming the file."""
    fix = "the file is damaged: restore it or train the run again."
    values = read_parsed(path, lambda data: yaml.safe_load(data.decode("utf-8")), "YAML", yaml.YAMLError,
                         _yaml_problem, missing_hint, fix)
    if not isinstance(values, dict):
        raise UptError(f"{path} holds {value_kind(values)}, not a mapping of settings; {fix}")
    return values


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: the problem and where it is."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        return one_line(exc.problem) + (f" at line {mark.line + 1}, column {mark.column + 1}" if mark else "")
    return one_line(str(exc))


def eval_record_path(run_dir: Path, dataset: str, classes: str, out: str | Path | None) -> Path:
    """Where an evaluation record goes (``out``, else ``RUN/eval/<dataset>-<classes>.json``), checked
    writable before anything is evaluated."""
    if out is not None:
        path = Path(out)
        if path.is_dir():
            raise UptError(f"--out {path} is a folder; give the name of the file to write the evaluation record to.")
        check_writable(path, "choose another --out FILE.")
        return path
    path = run_dir / "eval" / f"{dataset.replace(':', '_').replace('/', '_')}-{classes}.json"
    check_writable(path, "pass --out FILE to write the evaluation record elsewhere.")
    return path


def check_same_backbone(recorded: dict, backbone, run_dir: Path) -> None:
    """Refuse a backbone that differs from the one a run recorded (activation, widths, layers)."""
    here = backbone.describe()
    if "quick_gelu" in recorded and recorded["quick_gelu"] != here["quick_gelu"]:
        act = {True: "QuickGELU", False: "GELU"}
        raise UptError(f"Run {run_dir} was trained on {recorded['name']} with {act[recorded['quick_gelu']]} activations "
                       f"but the backbone loaded here uses {act[here['quick_gelu']]}; its prompts do not fit it "
                       f"(set quick_gelu: {str(recorded['quick_gelu']).lower()}, or start a new run).")
    mismatch = {k: (recorded[k], v) for k, v in here.items() if k in recorded and k != "preprocess" and recorded[k] != v}
    if mismatch:
        raise UptError(f"Backbone {recorded['name']} here differs from the one run {run_dir} was trained on: "
                       f"{json.dumps(mismatch)}; install the open_clip version recorded in {META_FILE}.")


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def attach_log_file(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logging.getLogger("upt").addHandler(handler)
    return handler
