"""How a sweep step runs: in this process (errors caught, memory released after) or as a ``python -m
upt`` subprocess with its own log, and the environment of each parallel worker (one GPU each, or a
share of the CPU threads)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from upt.errors import UptError

log = logging.getLogger(__name__)


def in_process(step, log_path: Path) -> str | None:
    """Run ``step`` (a :class:`upt.sweep.runner.Step`) in this process; returns the one-line error, or None on success."""
    try:
        step.run()
    except UptError as exc:
        return str(exc)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - any crash of one run is recorded, the sweep goes on
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(traceback.format_exc())
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        release_memory()
    return None


def release_memory() -> None:
    import gc

    gc.collect()
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        sys.modules["torch"].cuda.empty_cache()


def in_subprocess(argv: Sequence[str], log_path: Path, env: dict) -> str | None:
    """Run ``python -m upt ARGV`` with its output in ``log_path``; returns the one-line error or None."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as f:
        rc = subprocess.run([sys.executable, "-m", "upt", *argv], stdout=f, stderr=subprocess.STDOUT,
                            env=env, check=False).returncode
    if rc == 0:
        log_path.unlink(missing_ok=True)
        return None
    if rc < 0:
        return f"killed by signal {-rc}"
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("upt: error:")]
    if errors:
        return errors[-1][len("upt: error:"):].strip()
    return lines[-1] if lines else f"exit status {rc}"


def worker_envs(workers: int, pin_gpus: bool = True) -> list[dict]:
    """One environment per worker: its own GPU when there are GPUs, a share of the CPU threads otherwise."""
    envs = []
    gpus = visible_gpus() if pin_gpus else []
    if gpus and workers > len(gpus):
        log.warning("%d workers for %d GPU(s): several runs will share a GPU.", workers, len(gpus))
    threads = max(1, (os.cpu_count() or 1) // workers)
    for slot in range(workers):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        else:
            env.setdefault("OMP_NUM_THREADS", str(threads))
        envs.append(env)
    return envs


def visible_gpus() -> list[str]:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else [str(i) for i in range(count)]
    return ids[:count]
