"""Run folders: prompt tensors in safetensors, everything else in JSON/YAML; never pickle.

A trained run folder holds ``prompt.safetensors`` (trainable tensors only), ``upt.json`` (method,
its config, backbone, class names, template, preprocessing, versions), ``config.yaml``,
``results.json``, ``log.txt`` and ``metrics.jsonl``. ``checkpoint/`` holds the resume state,
written atomically (write to a temporary name, then rename) at the end of every epoch.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as tensors_to_bytes

from upt.errors import UptError

PROMPT_FILE = "prompt.safetensors"
META_FILE = "upt.json"
RESUME_DIR = "checkpoint"


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``, so a crash never leaves half a file.

    The file gets the permissions any file written in place would: those of the file it replaces,
    else ``0o666`` less the process umask (not ``mkstemp``'s private ``0o600``, which would hide
    results from teammates on a shared file system). Any OSError (a full disk, a read-only folder),
    or safetensors' own I/O error, is one UptError naming the file; the previous version stays
    intact and the temporary file is removed.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        write(Path(tmp))
        os.chmod(tmp, _file_mode(path))  # after the write: a writer may replace the file (safetensors does)
        os.replace(tmp, path)
        tmp = None
    except (OSError, SafetensorError) as exc:
        reason = os_reason(exc) if isinstance(exc, OSError) else one_line(str(exc))
        raise UptError(f"Cannot write {path} ({reason}); its previous version, if any, is unchanged.") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _file_mode(path: Path) -> int:
    """Permission bits for a new version of ``path``: the old version's, else what the umask allows."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask, read without changing it where the system shows it (Linux ``/proc``).

    Elsewhere it is read by setting a strict mask and restoring it at once: a file another thread
    creates in between is only ever more private, never more open.
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` and flush it to the disk, so a full disk is reported before the rename."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def check_writable(path: Path, advice: str = "choose another place for it.") -> None:
    """Raise UptError (ending with ``advice``) unless :func:`atomic_write` could create ``path``.

    Probes the nearest existing folder above ``path`` by creating and removing a temporary file,
    so a read-only file system, missing permissions and root's exemptions all answer truthfully;
    nothing is left behind and no folder is created.
    """
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UptError(f"{folder} is a file, not a folder, so {path} cannot be written; {advice}")
    try:
        _probe_folder(folder)
    except OSError as exc:
        raise UptError(f"Folder {folder} is read-only ({os_reason(exc)}), so {path} cannot be written; {advice}") from exc


def _probe_folder(folder: Path) -> None:
    """Create and remove a temporary file in ``folder``; raises OSError where that is refused."""
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".upt-write-test.")
    os.close(fd)
    os.unlink(probe)


def os_reason(exc: OSError) -> str:
    """The one-line reason of an OSError (``No space left on device``), without the file name."""
    return one_line(exc.strerror or str(exc))


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) replaced by one space."""
    return " ".join(str(text).split())


def value_kind(value: Any) -> str:
    """What a parsed JSON/YAML value is, for messages: ``a list``, ``a number``, ``null``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a true/false value"
    kinds = {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number"}
    return next((k for t, k in kinds.items() if isinstance(value, t)), f"a {type(value).__name__}")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON through :func:`atomic_write`."""
    blob = (json.dumps(data, indent=2, default=_json_default) + "\n").encode()
    atomic_write(path, lambda p: _write_file(p, blob))


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: Path) -> Any:
    """Parse a JSON file; every way it can be unreadable is one UptError naming it."""
    return read_parsed(Path(path), json.loads, "JSON", json.JSONDecodeError, str,
                       "is this a upt run folder?", "the file is damaged.")


def read_parsed(path: Path, parse: Callable[[bytes], Any], kind: str, syntax_error: type[Exception],
                describe: Callable[[Exception], str], missing_hint: str, fix: str) -> Any:
    """``parse`` of a file's bytes; a missing, unreadable, non-UTF-8, malformed (``syntax_error``,
    worded by ``describe``) or too deeply nested file is one UptError naming it, ending with ``fix``."""
    try:
        return parse(path.read_bytes())
    except FileNotFoundError as exc:
        raise UptError(f"{path} is missing; {missing_hint}") from exc
    except OSError as exc:
        raise UptError(f"{path} cannot be read ({os_reason(exc)}).") from exc
    except UnicodeDecodeError as exc:
        raise UptError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); {fix}") from exc
    except syntax_error as exc:
        raise UptError(f"{path} is not valid {kind} ({describe(exc)}); {fix}") from exc
    except RecursionError as exc:
        raise UptError(f"{path} nests its {kind} too deeply to read; {fix}") from exc


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` (moved to the CPU) and string ``metadata`` as safetensors through :func:`atomic_write`."""
    blob = tensors_to_bytes({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, metadata=metadata)
    atomic_write(path, lambda p: _write_file(p, blob))


def load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing or damaged one is one UptError naming it."""
    path = Path(path)
    if not path.exists():
        raise UptError(f"{path} is missing; the run has no trained prompt yet.")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise UptError(f"{path} {_tensor_file_problem(path, exc)}; restore it or train the run again.") from exc


def _tensor_file_problem(path: Path, exc: Exception) -> str:
    """Why a safetensors file cannot be read, recognising the usual impostors by their first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        head = None
    if head == b"":
        return "is empty"
    if head in _PICKLE_STARTS:
        return "is a pickle (torch.save) file, not safetensors, and upt never loads pickles"
    reason = os_reason(exc) if isinstance(exc, OSError) else one_line(str(exc))
    return f"is not a readable safetensors file ({reason})"


# The first bytes of torch.save's zip format and of its legacy pickle (protocol 2, then its magic number).
_PICKLE_STARTS = (b"PK\x03\x04", b"\x80\x02\x8a\x0a")


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
