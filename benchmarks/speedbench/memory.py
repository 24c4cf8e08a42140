"""Peak memory over a baseline, and the guard that keeps a CPU measurement within a memory cap.

Peak memory is measured over the baseline after the model is loaded and the batch is built: CUDA
max allocated, or on the CPU the peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) of a
fresh subprocess per measurement (:mod:`.isolation`), so no configuration inherits another's peak.
A CPU worker writes its record to a file (:func:`emit`); the watchdog writes it too before it ends
a worker that passed its cap.
"""

from __future__ import annotations

import gc
import json
import os
import threading

MIB = 2**20

def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class MemoryMeter:
    """Peak memory over a baseline: CUDA max allocated, or the process's peak RSS on the CPU."""

    def __init__(self, device):
        import torch

        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_peak_rss"
        self.hwm_reset = None
        if device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            self.base = torch.cuda.memory_allocated(device)
        else:
            gc.collect()
            try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self.hwm_reset = True
            except OSError:
                self.hwm_reset = False
            self.base = _status_kib("VmRSS") * 1024

    def peak_mib(self) -> float:
        """The peak since the meter was made, over its baseline."""
        import torch

        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = _status_kib("VmHWM") * 1024
        return max(0.0, (peak - self.base) / MIB)


class RssWatchdog:
    """On the CPU: abort the worker before its RSS passes ``cap_mib`` (the machine is shared)."""

    def __init__(self, cap_mib: float, on_abort):
        self.cap_kib = cap_mib * 1024
        self.on_abort = on_abort
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.02):
            rss = _status_kib("VmRSS")
            if rss > self.cap_kib:
                self.on_abort(rss / 1024)
                os._exit(3)


def available_mib() -> float | None:
    """The memory available to new work (``MemAvailable``), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


_WORKER_OUT: str | None = None


def set_worker_out(path: str) -> None:
    """Where :func:`emit` writes (a worker subprocess's record file)."""
    global _WORKER_OUT
    _WORKER_OUT = path


def emit(record: dict | list) -> None:
    """Write a worker's record(s) as JSON to its record file."""
    assert _WORKER_OUT is not None
    with open(_WORKER_OUT, "w") as f:
        json.dump(record, f)
