"""Run a measurement job, in this process or in a fresh worker subprocess of its own.

A job is ``{"spec": spec, "what": "both" | "timing" | "memory"}`` (one configuration),
``{"pair": [ours, reference]}`` (interleaved timing) or ``{"components": [ours, reference]}``, with
each spec as a dict. On the CPU each job runs in a fresh subprocess (``benchmarks/speed.py
--worker``), so its peak RSS is its own; the worker writes its records to a file the parent reads.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile

from .measure import measure, measure_components, measure_pair
from .memory import emit, set_worker_out
from .spec import Spec

# The command-line entry a worker subprocess runs (with the hidden --worker and --worker-out options).
ENTRY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "speed.py")


def run_isolated(job: dict) -> list[dict]:
    """Run a job (``{"pair": [spec, spec]}`` or ``{"spec": spec, "what": ...}``) in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "record.json")
        cmd = [sys.executable, ENTRY, "--worker", json.dumps(job), "--worker-out", out]
        tail: list[str] = []
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            for line in proc.stdout:  # progress lines (indented) live, the rest kept for errors
                if line.startswith("    "):
                    print(line, end="", flush=True)
                else:
                    tail = (tail + [line])[-60:]
        returncode = proc.returncode
        if os.path.exists(out):
            with open(out) as f:
                got = json.load(f)
            return got if isinstance(got, list) else [got]
        specs = job.get("pair") or job.get("components") or [job["spec"]]
        return [{**sp, "error": f"worker exited {returncode}: {''.join(tail)[-3000:]}"} for sp in specs]


def run_job(job: dict, isolate: bool, cache: dict) -> list[dict]:
    """Run a job in a subprocess (``isolate``) or here; a failure becomes an ``error`` in its records."""
    if isolate:
        return run_isolated(job)
    try:
        if "components" in job:
            return measure_components(*(Spec(**sp) for sp in job["components"]), cache=cache)
        if "pair" in job:
            return measure_pair(*(Spec(**sp) for sp in job["pair"]), cache=cache)
        return [measure(Spec(**job["spec"]), cache, job.get("what", "both"))]
    except Exception as exc:  # noqa: BLE001 - one failed configuration (e.g. out of memory) must not end the run
        import traceback

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001
            pass
        specs = job.get("pair") or job.get("components") or [job["spec"]]
        err = f"{type(exc).__name__}: {exc}"[:1000] + "\n" + traceback.format_exc(limit=3)[-1500:]
        return [{**sp, "error": err} for sp in specs]


def worker(job: dict, out: str) -> None:
    """The worker subprocess: run ``job`` and write its records to ``out``."""
    set_worker_out(out)
    if "components" in job:
        emit(measure_components(*(Spec(**sp) for sp in job["components"])))
    elif "pair" in job:
        emit(measure_pair(*(Spec(**sp) for sp in job["pair"])))
    else:
        emit(measure(Spec(**job["spec"]), what=job.get("what", "both")))
