"""The resume checkpoint: one file, written atomically at the end of every epoch.

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

import torch
from safetensors import safe_open

from upt.engine.checkpoint import RESUME_DIR, load_tensors, read_json, save_tensors
from upt.errors import UptError

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
