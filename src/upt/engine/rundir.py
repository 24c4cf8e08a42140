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
    load_tensors,
    read_json,
    versions,
)
from upt.errors import UptError

log = logging.getLogger(__name__)
RUN_FILES = (PROMPT_FILE, META_FILE, "config.yaml", "results.json", "log.txt", "metrics.jsonl", RESUME_DIR, "eval")
# A folder holds a run once training has started (a run that failed earlier leaves only its log).
RUN_MARKERS = (PROMPT_FILE, META_FILE, "results.json", RESUME_DIR)


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
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UptError(f"Run folder {run_dir} does not exist.")
    return run_dir


def read_config(run_dir: Path):
    from upt.engine.config import from_dict

    path = require_run_dir(run_dir) / "config.yaml"
    if not path.exists():
        raise UptError(f"{path} is missing; is {run_dir} a upt run folder?")
    return from_dict(yaml.safe_load(path.read_text()))


def load_run(run_dir: str | Path, device: str = "auto", backbone: str | None = None,
             pretrained: str | None = None):
    """Rebuild the trained method of a run folder.

    Args:
        run_dir: the run folder.
        device: where to put it.
        backbone, pretrained: when given, must match what the run was trained with.

    Returns:
        (method, meta): the method in eval mode and the content of ``upt.json``.
    """
    from upt.backbone import load_backbone
    from upt.backbone.load import model_config
    from upt.methods import build_method

    run_dir = require_run_dir(run_dir)
    meta = read_json(run_dir / META_FILE)
    need = meta["backbone"]
    if (backbone and backbone != need["name"]) or (pretrained and pretrained != need["pretrained"]):
        raise UptError(
            f"Run {run_dir} was trained on backbone {need['name']} (pretrained {need['pretrained'] or 'none'}); it "
            f"cannot be used with {backbone or need['name']} (pretrained {pretrained or need['pretrained'] or 'none'}). "
            f"Use --backbone {need['name']}" + (f" --pretrained {need['pretrained']}." if need["pretrained"] else ".")
        )
    # Runs recorded before the activation was stored were built with the model config's own.
    quick_gelu = need.get("quick_gelu", model_config(need["name"]).get("quick_gelu", False))
    bb = load_backbone(need["name"], need["pretrained"], resolve_device(device), quick_gelu=quick_gelu)
    check_same_backbone(need, bb, run_dir)
    method = build_method(meta["method"], bb, meta["classnames"], meta["template"], meta["method_config"],
                          meta.get("ensemble_with_template", True))
    method.load_trainable_state_dict(load_tensors(run_dir / PROMPT_FILE, bb.device))
    method.eval()
    return method, meta


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
