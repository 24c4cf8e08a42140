"""Run a measurement in this process: one configuration alone, a pair interleaved, or a step's parts.

On the CPU (shared, noisy) ours and reference-style are timed interleaved step by step in one
subprocess (:func:`measure_pair`), and peak memory comes from short runs of their own
(:func:`measure`; ``--timing``, ``--memory-steps``); ``--measure components`` splits a training step
into image forward and text forward + backward (:func:`measure_components`).
"""

from __future__ import annotations

import statistics

from .memory import MIB, MemoryMeter, RssWatchdog, emit
from .spec import Spec
from .styles import text_tokens
from .workload import Setup


def run_setup(s: Setup, warmup: int, steps: int) -> None:
    """``warmup`` untimed then ``steps`` timed units of one setup (evaluation inside ``begin_eval``)."""
    if s.mode == "eval":
        for _ in range(warmup):
            s.warm_eval()
        s.begin_eval()
        try:
            for _ in range(steps):
                s.step()
        finally:
            s.end_eval()
    else:
        for i in range(warmup + steps):
            s.step(record=i >= warmup)


def measure(spec: Spec, cache: dict | None = None, what: str = "both") -> dict:
    """One configuration on its own: peak memory over the post-setup baseline, and timing."""
    cache = {} if cache is None else cache
    s = Setup(spec, cache)
    record = s.record
    meter = MemoryMeter(s.device)
    try:
        return _measure_setup(s, spec, meter, record, what)
    finally:
        s.close()


def _measure_setup(s: Setup, spec: Spec, meter: MemoryMeter, record: dict, what: str) -> dict:
    watchdog = None
    if s.device.type == "cpu" and spec.mem_cap_mib:
        def on_abort(rss_mib):
            record.update(error=f"aborted: RSS {rss_mib:.0f} MiB passed the cap of {spec.mem_cap_mib:.0f} MiB",
                          peak_mem_mib_lower_bound=rss_mib - meter.base / MIB, memory=meter.kind)
            emit(record)
        watchdog = RssWatchdog(spec.mem_cap_mib, on_abort)
    run_setup(s, spec.warmup, spec.steps)
    if watchdog is not None:
        watchdog.stop.set()
    record.update(peak_mem_mib=meter.peak_mib(), memory=meter.kind, hwm_reset=meter.hwm_reset,
                  memory_steps=spec.warmup + spec.steps)
    if what != "memory":
        record.update(s.timing(), timing="separate")
    return record


def measure_pair(spec_ours: Spec, spec_ref: Spec, cache: dict | None = None) -> list[dict]:
    """Time ours and reference-style interleaved step by step in one process (CPU, shared backbone).

    Background load on a shared CPU then slows both alike; the ratio of medians stays meaningful.
    """
    cache = {} if cache is None else cache
    pair = [Setup(spec_ours, cache)]
    try:
        pair.append(Setup(spec_ref, cache))
        return _run_pair(pair, spec_ours.warmup, spec_ours.steps)
    finally:
        for s in pair:
            s.close()


def _run_pair(pair: list[Setup], warmup: int, steps: int) -> list[dict]:
    if pair[0].mode == "eval":
        for _ in range(warmup):
            for s in pair:
                s.warm_eval()
        for s in pair:
            s.begin_eval()
        try:
            for _ in range(steps):
                for s in pair:
                    s.step()
        finally:
            for s in pair:
                s.end_eval()
    else:
        for i in range(warmup + steps):
            for s in pair:
                s.step(record=i >= warmup)
    return [{**s.record, **s.timing(), "timing": "paired-interleaved"} for s in pair]


def measure_components(spec_ours: Spec, spec_ref: Spec, cache: dict | None = None) -> list[dict]:
    """Where a training step's time goes, ours and reference-style interleaved in one process:
    the image encoder's forward alone (``encode_image``; for methods with visual prompts the step
    also runs its backward) and the class text's forward + backward (``encode_text().sum()``)."""
    import torch

    cache = {} if cache is None else cache
    pair = [Setup(spec_ours, cache)]
    try:
        pair.append(Setup(spec_ref, cache))
        parts: dict[str, dict[str, list[float]]] = {s.spec.style: {"image_forward": [], "text_fwd_bwd": []}
                                                    for s in pair}
        for i in range(spec_ours.warmup + spec_ours.steps):
            for s in pair:
                m = s.method
                for part, fn in (
                    ("image_forward", lambda m=m, s=s: m.encode_image(s.images)),
                    ("text_fwd_bwd", lambda m=m: m.encode_text().sum().backward()),
                ):
                    if part == "text_fwd_bwd" and text_tokens(m) is None:
                        continue
                    with s.prec.autocast(), torch.set_grad_enabled(part == "text_fwd_bwd"):
                        s.times = []
                        s.timed(fn, True)
                    if i >= spec_ours.warmup:
                        parts[s.spec.style][part] += s.times
        return [{**s.record, "components_s": parts[s.spec.style],
                 "components_median_s": {k: statistics.median(v) for k, v in parts[s.spec.style].items() if v}}
                for s in pair]
    finally:
        for s in pair:
            s.close()
