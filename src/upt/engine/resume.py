"""Resuming a run: the checkpoint, one file written atomically at the end of every epoch, and the
checks around it (the same run only, finite tensors only, metrics of epochs about to rerun dropped).

``checkpoint/state.safetensors`` holds the trained tensors (``method.*``), the optimizer's tensors
(``optim.*``) and, in the file's own metadata, the JSON state (epoch, optimizer settings, step,
timings, the last epoch's statistics). One file renamed into place is one atomic unit: a crash
leaves either the previous epoch's checkpoint or this one, never tensors of one epoch with the
counters of another. Checkpoints written before this format (``state.json`` beside the tensors)
are still read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open

from upt.engine.checkpoint import RESUME_DIR, atomic_write, load_tensors, read_json, save_tensors
from upt.engine.rundir import read_yaml_mapping
from upt.errors import UptError

if TYPE_CHECKING:
    from upt.engine.config import RunConfig
    from upt.engine.train import Trainer

STATE_FILE = "state.safetensors"
LEGACY_STATE_JSON = "state.json"


def checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / RESUME_DIR / STATE_FILE


def save_checkpoint(run_dir: Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Write tensors and JSON state as one file, atomically."""
    save_tensors(checkpoint_path(run_dir), tensors, metadata={"upt_state": json.dumps(state)})
    legacy = Path(run_dir) / RESUME_DIR / LEGACY_STATE_JSON
    legacy.unlink(missing_ok=True)  # a stale two-file state must never be read beside the new one


def load_checkpoint(run_dir: Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict] | None:
    """(tensors, state) of the last finished epoch, or None when the run has no checkpoint yet."""
    path = checkpoint_path(run_dir)
    if not path.exists():
        return None
    tensors = load_tensors(path, device)  # a damaged file is one sentence naming it
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if "upt_state" in metadata:
        try:
            return tensors, json.loads(metadata["upt_state"])
        except json.JSONDecodeError:
            raise UptError(f"Checkpoint {path} holds damaged state metadata; remove {path.parent} to restart "
                           "the run.") from None
    legacy = path.parent / LEGACY_STATE_JSON
    if not legacy.exists():
        raise UptError(f"Checkpoint {path} carries no training state; remove {path.parent} to restart the run.")
    return tensors, read_json(legacy)


# Settings that change what a run costs, not the numbers it produces: they may differ between a
# run folder and a request to continue it (``--resume``, a sweep re-run).
SAFE_TO_CHANGE = ("device", "devices", "deterministic", "data_root", "data.num_workers", "data.eval_batch_size",
                  "data.cache_images", "compute.")


def _flat(values: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(stored: dict, requested: dict) -> list[str]:
    """``key: stored -> requested`` for every setting two resolved configs disagree on, except the
    cost-only ones (:data:`SAFE_TO_CHANGE`) and keys one of them predates."""
    a, b = _flat(stored), _flat(requested)
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in sorted(set(a) & set(b))
            if a[k] != b[k] and not any(k == s or (s.endswith(".") and k.startswith(s)) for s in SAFE_TO_CHANGE)]


def check_same_run(out: Path, cfg: RunConfig) -> None:
    """Refuse ``--resume`` of a run folder trained with other settings, before anything is written."""
    stored = out / "config.yaml"
    if not stored.exists():
        return
    previous = read_yaml_mapping(stored, "cannot check what run --resume would continue.")
    diff = config_differences(previous, cfg.to_dict())
    if diff:
        raise UptError(f"Run folder {out} holds a different run ({'; '.join(diff)}); --resume continues only the "
                       "same run: use another --out, or --overwrite to replace it.")


def require_finite(tensors: dict[str, torch.Tensor], epoch: int, trainer: Trainer) -> None:
    """Stop before a checkpoint would store non-finite trained tensors (a finite loss does not
    guarantee finite parameters); the previous epoch's checkpoint stays."""
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UptError(f"The trained tensors became non-finite ({', '.join(bad[:3])}) in epoch {epoch + 1} "
                       f"(step {trainer.step}); training stopped and the last good checkpoint is kept. "
                       f"{trainer.advice()}.")


def keep_epochs(metrics_file: Path, epochs: int) -> None:
    """Drop the records of epochs after ``epochs`` (written before a crash, about to run again)."""
    if not metrics_file.exists():
        return
    lines = [line for line in metrics_file.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line).get("epoch", 0) <= epochs]
    if len(kept) != len(lines):
        atomic_write(metrics_file, lambda p: p.write_text("".join(f"{line}\n" for line in kept)))
