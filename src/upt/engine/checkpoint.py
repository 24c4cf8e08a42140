"""Run folders: prompt tensors in safetensors, everything else in JSON/YAML; never pickle.

A trained run folder holds ``prompt.safetensors`` (trainable tensors only), ``upt.json`` (method,
its config, backbone, class names, template, preprocessing, versions), ``config.yaml``,
``results.json``, ``log.txt`` and ``metrics.jsonl``. ``checkpoint/`` holds the resume state,
written atomically (write to a temporary name, then rename) at the end of every epoch.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from upt.errors import UptError

PROMPT_FILE = "prompt.safetensors"
META_FILE = "upt.json"
RESUME_DIR = "checkpoint"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, default=_json_default) + "\n"))


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise UptError(f"{path} is missing; is this a upt run folder?") from exc
    except json.JSONDecodeError as exc:
        raise UptError(f"{path} is not valid JSON ({exc}); the file is damaged.") from exc


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda p: save_file(data, str(p)))


def load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    if not Path(path).exists():
        raise UptError(f"{path} is missing; the run has no trained prompt yet.")
    return load_file(str(path), device=str(device))


# --- optimizer state without pickle ---------------------------------------------------------
def optimizer_to_files(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state into tensors (for safetensors) and plain JSON."""
    sd = opt.state_dict()
    tensors, state_json = {}, {}
    for idx, st in sd["state"].items():
        state_json[str(idx)] = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{idx}.{k}"] = v
            else:
                state_json[str(idx)][k] = v
    return tensors, {"state": state_json, "param_groups": sd["param_groups"]}


def optimizer_from_files(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {int(i): dict(v) for i, v in meta["state"].items()}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import numpy

    import upt

    try:
        open_clip_version = version("open_clip_torch")
    except PackageNotFoundError:
        open_clip_version = "unknown"
    return {
        "upt": upt.__version__,
        "torch": torch.__version__,
        "open_clip": open_clip_version,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
    }


def git_revision() -> str | None:
    """The source revision of the installed package, when it runs from a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
