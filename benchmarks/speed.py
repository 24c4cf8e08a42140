"""Speed and memory benchmark: our compute settings against a reference-style configuration.

For each method, class count and phase (``train``, ``eval``) it measures, once in *our*
configuration and once *reference-style*, in the same run:

- training images/s: one optimizer step = forward over a batch with every class prompt, CE loss,
  backward, SGD step (median over ``--steps`` timed steps after ``--warmup`` untimed ones). Methods
  that do not train by gradient (zeroshot, linear-probe) report their feature-extraction rate
  (frozen image encoder under ``torch.no_grad``) instead, marked ``features``;
- evaluation images/s over ``--steps`` test batches of ``--eval-batch-size`` under ``torch.no_grad``:
  ``steps * batch / (t_text + steps * median(t_batch))`` where ``t_text`` is the one-time class
  text encoding on entering ``method.cached_text()`` (ours; 0 reference-style, which re-encodes the
  text inside every batch);
- peak memory over the baseline after the model is loaded and the batch is built: CUDA max
  allocated, or on the CPU the peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) of a
  fresh subprocess per measurement, so no configuration inherits another's peak;
- trainable parameters (``method.num_trainable()``).

Ours: sequences cut after the last [EOS], class text encoded once per evaluation, ``--precision``
(auto: fp32 on CPU, bf16 on CUDA), and where a step encodes more text sequences than
``--chunk-size``, chunked text encoding (plus gradient checkpointing with ``--checkpointing``).
Reference-style (what the reference code bases do): all 77 tokens, text re-encoded per test batch,
no chunking (CoCoOp: one image's n_cls prompts at a time, the reference's loop over images),
legacy fp16 (whole model and prompts in half) on CUDA, fp32 on CPU.

On the CPU (shared, noisy) ours and reference-style are timed interleaved step by step in one
subprocess, and peak memory comes from short runs of their own (``--timing``, ``--memory-steps``);
``--measure components`` splits a training step into image forward and text forward + backward.
benchmarks/README.md describes every option and the measured results.

Example (CPU, two methods)::

    python benchmarks/speed.py --methods coop upt --classes 100 --steps 3 --warmup 1 \\
        --out benchmarks/results/cpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STYLES = ("ours", "reference")
PHASES = ("train", "eval")
DEFAULT_METHODS = ("zeroshot", "linear-probe", "coop", "cocoop", "vpt", "maple", "upt")
MIB = 2**20

# --- class names ------------------------------------------------------------------------------
# Realistic names are 1-3 common words (ImageNet's average about two), so the truncated prompt
# length is what a real dataset gives.
_ADJECTIVES = (
    "red", "black", "small", "giant", "wild", "spotted", "striped", "golden", "common", "northern",
    "southern", "eastern", "western", "mountain", "desert", "river", "sea", "royal", "little", "great",
    "silver", "brown", "green", "white", "blue", "grey", "yellow", "long", "short", "pygmy",
    "horned", "crested", "electric", "wooden", "paper", "stone", "iron", "folding", "portable", "pocket",
)
_NOUNS = (
    "fox", "wolf", "bear", "eagle", "owl", "shark", "whale", "frog", "lizard", "snake", "spider",
    "beetle", "butterfly", "moth", "crab", "lobster", "turtle", "rabbit", "squirrel", "monkey", "horse",
    "goat", "sheep", "pig", "duck", "goose", "swan", "heron", "parrot", "robin", "sparrow", "finch",
    "truck", "car", "bicycle", "boat", "train", "plane", "bridge", "tower", "castle", "church", "lamp",
    "chair", "table", "clock", "guitar", "piano", "drum", "violin", "kettle", "teapot", "mug", "bottle",
    "hammer", "saw", "shovel", "umbrella", "backpack", "wallet", "helmet", "mask", "shoe", "boot",
    "flower", "daisy", "rose", "tulip", "mushroom", "apple", "banana", "orange", "lemon", "pepper",
)
_SECOND = ("tailed", "billed", "necked", "headed", "winged", "eared", "backed", "footed", "haired", "nosed")


def make_classnames(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct, deterministic class names of 1-3 words ("fox", "river otter", ...)."""
    rng = random.Random(seed)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        words = rng.choice((1, 2, 2, 2, 3))
        noun = rng.choice(_NOUNS)
        if words == 1:
            name = noun
        elif words == 2:
            name = f"{rng.choice(_ADJECTIVES)} {noun}"
        else:
            name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_ADJECTIVES)}-{rng.choice(_SECOND)} {noun}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


# --- one measurement ---------------------------------------------------------------------------
@dataclasses.dataclass
class Spec:
    """Everything one measurement depends on (serialised to a worker subprocess on the CPU)."""

    method: str
    n_cls: int
    phase: str  # train | eval
    style: str  # ours | reference
    backbone: str = "ViT-B-16"
    pretrained: str | None = None
    batch_size: int = 32
    eval_batch_size: int = 100
    steps: int = 5
    warmup: int = 2
    device: str = "cpu"
    precision: str = "auto"  # ours; reference-style is legacy-fp16 on CUDA, fp32 elsewhere
    chunk_size: int | None = None
    checkpointing: bool = False
    template: str = "a photo of a {}."
    mem_cap_mib: float | None = None  # CPU subprocess: abort (and say so) past this RSS
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    seed: int = 0


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_kib(field: str) -> int:
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


def _text_lengths(method) -> int | None:
    from upt.methods.text_prompt import PromptTemplate

    for m in method.modules():
        if isinstance(m, PromptTemplate):
            return int(m.ids.shape[1])
    return None


def _text_sequences(method, spec: Spec, batch: int) -> int:
    """How many text sequences one forward encodes (0: no learned text prompts)."""
    if _text_lengths(method) is None:
        return 0
    return spec.n_cls * (batch if method.image_dependent_text else 1)


class Setup:
    """One configured method on a backbone, with its batch, ready to step."""

    def __init__(self, spec: Spec, cache: dict):
        import torch

        from upt.backbone import load_backbone
        from upt.engine.precision import resolve_precision
        from upt.methods import PromptMethod, build_method

        self.spec = spec
        self.device = device = torch.device(spec.device)
        if spec.threads:
            torch.set_num_threads(spec.threads)
        torch.manual_seed(spec.seed)
        self.ours = ours = spec.style == "ours"
        precision_name = spec.precision if ours else ("legacy-fp16" if device.type == "cuda" else "fp32")
        self.prec = prec = resolve_precision(precision_name, device)

        key = (spec.backbone, spec.pretrained, str(device))
        if key not in cache:
            cache.clear()
            cache[key] = load_backbone(spec.backbone, spec.pretrained, device)
        backbone = cache[key]
        backbone.model.to(prec.model_dtype)  # a cached backbone may have been cast by legacy-fp16

        names = make_classnames(spec.n_cls, spec.seed)
        self.method = method = build_method(spec.method, backbone, names, spec.template)
        self.batch = batch = spec.batch_size if spec.phase == "train" else spec.eval_batch_size
        n_seq = _text_sequences(method, spec, batch)
        if ours:
            chunk = spec.chunk_size if spec.chunk_size and n_seq > spec.chunk_size else None
            method.configure_compute(text_chunk_size=chunk, grad_checkpointing=bool(chunk and spec.checkpointing),
                                     truncate_text=True)
        else:
            # The reference CoCoOp loops over the images of a batch: n_cls sequences at a time.
            chunk = spec.n_cls if method.image_dependent_text and n_seq > spec.n_cls else None
            method.configure_compute(text_chunk_size=chunk, grad_checkpointing=False, truncate_text=False,
                                     share_prefix=False)
        prec.prepare(backbone, method)
        self.precision_fallback = None
        if prec.name == "legacy-fp16":
            self._probe_legacy(backbone, method, spec)
        prec = self.prec
        # Text once per evaluation (ours) wherever the method has class text features to cache.
        has_text = getattr(method, "uses_text", type(method).encode_text is not PromptMethod.encode_text)
        self.cache_text = ours and bool(has_text)

        size = backbone.preprocess.size
        gen = torch.Generator().manual_seed(spec.seed)
        self.images = torch.randn(batch, 3, size, size, generator=gen).to(device)
        self.labels = torch.randint(0, spec.n_cls, (batch,), generator=gen).to(device)
        self.mode = "eval" if spec.phase == "eval" else ("train-step" if method.trains_by_gradient else "features")
        self.record = {
            **dataclasses.asdict(spec),
            "precision_used": prec.name,
            "precision_fallback": self.precision_fallback,
            "batch": batch,
            "mode": self.mode,
            "trainable": method.num_trainable(),
            "text_tokens": _text_lengths(method),
            "text_sequences_per_forward": n_seq,
            "text_chunk_size_used": method.text_chunk_size,
            "grad_checkpointing_used": method.grad_checkpointing,
            "text_once_per_eval": self.cache_text,
            "torch_threads": torch.get_num_threads(),
        }
        self.times: list[float] = []
        self.text_s = 0.0
        self._ctx = None
        if self.mode == "train-step":
            method.train()
            params = [p for p in method.parameters() if p.requires_grad]
            self.opt = torch.optim.SGD(params, lr=2e-3, momentum=0.9)
            self.scaler = prec.scaler()
        else:
            method.eval()

    def _probe_legacy(self, backbone, method, spec: Spec) -> None:
        """Some methods mix dtypes when everything is cast to half (linear-probe: fp32 features
        against an fp16 classifier); they fall back to fp16 autocast, recorded in the results."""
        import torch

        from upt.engine.precision import resolve_precision

        size = backbone.preprocess.size
        try:
            with torch.no_grad():
                method(torch.zeros(1, 3, size, size, device=self.device))
        except RuntimeError as exc:
            if "dtype" not in str(exc):
                raise
            self.precision_fallback = f"legacy-fp16 failed ({exc}); fp16 autocast instead"
            backbone.model.to(torch.float32)
            method.to(torch.float32)
            self.prec = resolve_precision("fp16", self.device)

    def _timed(self, fn, record: bool) -> None:
        _sync(self.device)
        t0 = time.perf_counter()
        fn()
        _sync(self.device)
        dt = time.perf_counter() - t0
        if record:
            self.times.append(dt)
        sp = self.spec
        print(f"    {sp.method} n_cls={sp.n_cls} {sp.phase} {sp.style}: {'step' if record else 'warm-up'} {dt:.3f} s",
              file=sys.stderr, flush=True)

    def step(self, record: bool = True) -> None:
        """One timed unit: an optimizer step, a feature extraction, or one test batch."""
        import torch
        import torch.nn.functional as F

        m, prec = self.method, self.prec
        if self.mode == "train-step":
            def fn():
                with prec.autocast():
                    loss = F.cross_entropy(m(self.images).float(), self.labels)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.opt)
                self.scaler.update()
                self.opt.zero_grad(set_to_none=True)
        elif self.mode == "features":
            def fn():
                with torch.no_grad(), prec.autocast():
                    m.encode_image(self.images)
        else:
            def fn():
                with torch.no_grad(), prec.autocast():
                    m(self.images)
        self._timed(fn, record)

    def warm_eval(self) -> None:
        """One untimed test batch, inside ``cached_text()`` where ours uses it."""
        import torch

        with torch.no_grad(), self.prec.autocast():
            if self.cache_text:
                with self.method.cached_text():
                    self.method(self.images)
            else:
                self.method(self.images)

    def begin_eval(self) -> None:
        """Enter ``cached_text()`` (ours), timing the one-time class text encoding."""
        import torch

        if not self.cache_text:
            return
        self._ctx = self.method.cached_text()
        _sync(self.device)
        t0 = time.perf_counter()
        with torch.no_grad(), self.prec.autocast():
            self._ctx.__enter__()
        _sync(self.device)
        self.text_s = time.perf_counter() - t0

    def end_eval(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None

    def timing(self) -> dict:
        med = statistics.median(self.times)
        if self.mode == "eval":
            n = len(self.times)
            per_s = n * self.batch / (self.text_s + n * med)
        else:
            per_s = self.batch / med
        return {"images_per_s": per_s, "step_s_median": med, "step_s_all": self.times, "text_once_s": self.text_s}

    def close(self) -> None:
        import torch

        self.end_eval()
        for name in ("method", "images", "labels", "opt", "scaler"):
            if hasattr(self, name):
                delattr(self, name)
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


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
                    if part == "text_fwd_bwd" and _text_lengths(m) is None:
                        continue
                    with s.prec.autocast(), torch.set_grad_enabled(part == "text_fwd_bwd"):
                        s.times = []
                        s._timed(fn, True)
                    if i >= spec_ours.warmup:
                        parts[s.spec.style][part] += s.times
        return [{**s.record, "components_s": parts[s.spec.style],
                 "components_median_s": {k: statistics.median(v) for k, v in parts[s.spec.style].items() if v}}
                for s in pair]
    finally:
        for s in pair:
            s.close()


def run_setup(s: Setup, warmup: int, steps: int) -> None:
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
            _emit(record)
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


_WORKER_OUT: str | None = None


def _emit(record: dict | list) -> None:
    assert _WORKER_OUT is not None
    with open(_WORKER_OUT, "w") as f:
        json.dump(record, f)


def _available_mib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_isolated(job: dict) -> list[dict]:
    """Run a job (``{"pair": [spec, spec]}`` or ``{"spec": spec, "what": ...}``) in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "record.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(job), "--worker-out", out]
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


def _worker(job: dict) -> None:
    if "components" in job:
        _emit(measure_components(*(Spec(**sp) for sp in job["components"])))
    elif "pair" in job:
        _emit(measure_pair(*(Spec(**sp) for sp in job["pair"])))
    else:
        _emit(measure(Spec(**job["spec"]), what=job.get("what", "both")))


# --- report ------------------------------------------------------------------------------------
def _key(r: dict) -> tuple:
    return (r["method"], r["n_cls"], r["phase"], r["style"])


def pair_rows(results: list[dict]) -> list[dict]:
    """One row per (method, classes, phase) with ours, reference and the ratios ours / reference."""
    by = {_key(r): r for r in results}
    order = {m: i for i, m in enumerate(DEFAULT_METHODS)}
    rows, seen = [], set()
    for r in sorted(results, key=lambda r: (order.get(r["method"], 99), r["n_cls"], PHASES.index(r["phase"]))):
        k = (r["method"], r["n_cls"], r["phase"])
        if k in seen:
            continue
        seen.add(k)
        o, ref = by.get((*k, "ours")), by.get((*k, "reference"))
        row = {"method": k[0], "n_cls": k[1], "phase": k[2]}
        for tag, rec in (("ours", o), ("reference", ref)):
            if rec is None:
                continue
            row[f"{tag}_images_per_s"] = rec.get("images_per_s")
            row[f"{tag}_peak_mem_mib"] = rec.get("peak_mem_mib")
            row[f"{tag}_text_tokens"] = rec.get("text_tokens")
            row[f"{tag}_error"] = rec.get("error")
            row[f"{tag}_memory_error"] = rec.get("memory_error")
            if rec.get("components_median_s"):
                row[f"{tag}_components"] = rec["components_median_s"]
            if rec.get("peak_mem_mib_lower_bound") is not None:
                row[f"{tag}_peak_mem_mib_lower_bound"] = rec["peak_mem_mib_lower_bound"]
            row["mode"] = rec.get("mode", row.get("mode"))
            row["batch"] = rec.get("batch", row.get("batch"))
            row["trainable"] = rec.get("trainable", row.get("trainable"))
        if o and ref and o.get("images_per_s") and ref.get("images_per_s"):
            row["speed_ratio"] = o["images_per_s"] / ref["images_per_s"]
            if o.get("timing") == ref.get("timing") == "paired-interleaved" and o["mode"] != "eval":
                # each timed step of ours next to the reference step right after it
                pairs = [r / s for s, r in zip(o["step_s_all"], ref["step_s_all"], strict=True)]
                row["speed_ratio_per_pair"] = pairs
                row["speed_ratio_pair_median"] = statistics.median(pairs)
        if o and ref and o.get("peak_mem_mib") is not None and ref.get("peak_mem_mib"):
            row["memory_ratio"] = o["peak_mem_mib"] / ref["peak_mem_mib"]
        elif o and ref and o.get("peak_mem_mib") is not None and ref.get("peak_mem_mib_lower_bound"):
            row["memory_ratio_upper_bound"] = o["peak_mem_mib"] / ref["peak_mem_mib_lower_bound"]
        rows.append(row)
    return rows


def _fmt(x, spec=".1f", none="–"):
    return none if x is None else format(x, spec)


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"Device: {meta.get('device_name')}; backbone {meta.get('backbone')}.", ""]
    for run in meta.get("runs", []):
        lines.append(f"- `{run.get('command')}`")
    lines += [
        "",
        "| method | classes | phase | batch | ours img/s | ref img/s | speed × (pairs) | ours peak MiB | ref peak MiB "
        "| mem ours/ref | text tokens ours/ref | trainable |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        phase = r["phase"] if r.get("mode") != "features" else "train (features)"
        ref_mem = _fmt(r.get("reference_peak_mem_mib"), ".0f")
        mem_ratio = _fmt(r.get("memory_ratio"), ".2f")
        if r.get("reference_peak_mem_mib_lower_bound") is not None:
            ref_mem = f"> {r['reference_peak_mem_mib_lower_bound']:.0f} (aborted)"
            mem_ratio = f"< {r['memory_ratio_upper_bound']:.2f}" if r.get("memory_ratio_upper_bound") else "–"
        elif r.get("reference_memory_error"):
            ref_mem = "error"
        ref_ips = _fmt(r.get("reference_images_per_s"), ".2f")
        if r.get("reference_error") and r.get("reference_images_per_s") is None:
            ref_ips = "error"
        speed = _fmt(r.get("speed_ratio"), ".2f")
        if r.get("speed_ratio_pair_median") is not None:
            speed += f" ({r['speed_ratio_pair_median']:.2f})"
        tokens = f"{r.get('ours_text_tokens') or '–'}/{r.get('reference_text_tokens') or '–'}"
        trainable = f"{r['trainable']:,}" if isinstance(r.get("trainable"), int) else "–"
        lines.append(
            f"| {r['method']} | {r['n_cls']} | {phase} | {r.get('batch', '–')} "
            f"| {_fmt(r.get('ours_images_per_s'), '.2f')} | {ref_ips} | {speed} "
            f"| {_fmt(r.get('ours_peak_mem_mib'), '.0f')} | {ref_mem} | {mem_ratio} | {tokens} | {trainable} |"
        )
    comps = [r for r in rows if r.get("ours_components") or r.get("reference_components")]
    if comps:
        lines += ["", "Training-step components (median seconds; image encoder forward alone, class text forward + "
                  "backward):", "", "| method | classes | batch | ours image fwd | ref image fwd | ours text fwd+bwd "
                  "| ref text fwd+bwd |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in comps:
            o, f = r.get("ours_components") or {}, r.get("reference_components") or {}
            lines.append(f"| {r['method']} | {r['n_cls']} | {r.get('batch', '–')} | {_fmt(o.get('image_forward'), '.2f')} "
                         f"| {_fmt(f.get('image_forward'), '.2f')} | {_fmt(o.get('text_fwd_bwd'), '.2f')} "
                         f"| {_fmt(f.get('text_fwd_bwd'), '.2f')} |")
    return "\n".join(lines) + "\n"


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


# --- CLI ---------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), help="registered method names")
    p.add_argument("--backbone", default="ViT-B-16", help="open_clip model name or a built-in (tiny)")
    p.add_argument("--pretrained", default=None, help="open_clip tag or weights file (default: random weights)")
    p.add_argument("--classes", nargs="+", type=int, default=[100], help="class counts, e.g. 100 1000")
    p.add_argument("--batch-size", type=int, default=32, help="training batch")
    p.add_argument("--cocoop-batch-size", type=int, default=1,
                   help="CoCoOp's training batch (its published configs use 1: the text encoder runs B x n_cls "
                        "sequences per step)")
    p.add_argument("--eval-batch-size", type=int, default=100, help="test batch")
    p.add_argument("--steps", type=int, default=5, help="timed steps (training) / test batches (evaluation)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps / batches before timing")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--precision", default="auto", help="ours: auto, fp32, bf16, fp16, legacy-fp16")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="ours: encode at most this many text sequences at a time when a step has more")
    p.add_argument("--checkpointing", action="store_true",
                   help="ours: gradient checkpointing wherever text chunking is active")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES), help="what to measure")
    p.add_argument("--styles", nargs="+", choices=STYLES, default=list(STYLES),
                   help="ours and/or reference-style (ratios need both)")
    p.add_argument("--isolate", choices=("auto", "yes", "no"), default="auto",
                   help="one subprocess per measurement (auto: on the CPU, where peak RSS is per process)")
    p.add_argument("--measure", choices=("both", "timing", "memory", "components"), default="both",
                   help="both: timing and peak memory; components: time the image encoder's forward and the class text's forward+backward "
                        "apart (ours and reference-style interleaved), to explain a training-step ratio")
    p.add_argument("--timing", choices=("auto", "paired", "separate"), default="auto",
                   help="paired: ours and reference-style interleaved step by step in one process (auto: on "
                        "the CPU, where other load would otherwise skew the ratio); memory then comes from "
                        "short runs of their own (--memory-steps)")
    p.add_argument("--memory-steps", type=int, default=1, help="steps of the separate memory runs (paired timing)")
    p.add_argument("--mem-cap-gb", type=float, default=None,
                   help="CPU: abort a measurement past this RSS (default: 85%% of available memory)")
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/speed-<device>-<date>.json); "
                                               "the Markdown table goes beside it (.md)")
    p.add_argument("--append", action="store_true",
                   help="merge into an existing --out file (same method/classes/phase/style replaced)")
    p.add_argument("--report", default=None, metavar="JSON",
                   help="only rewrite the rows and the Markdown table of an existing results file")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    global _WORKER_OUT
    args = parse_args(argv)
    if args.worker:
        _WORKER_OUT = args.worker_out
        _worker(json.loads(args.worker))
        return 0

    if args.report:
        path = Path(args.report)
        old = json.loads(path.read_text())
        _write(path, old["meta"], old["results"])
        print(path.with_suffix(".md").read_text())
        return 0

    import torch

    from upt.methods import REGISTRY

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    unknown = [m for m in args.methods if m not in REGISTRY]
    if unknown:
        raise SystemExit(f"Unknown method(s) {unknown}; known: {sorted(REGISTRY)}")
    isolate = args.isolate == "yes" or (args.isolate == "auto" and not device.startswith("cuda"))
    date = datetime.date.today().isoformat()
    out = Path(args.out or f"benchmarks/results/speed-{device.split(':')[0]}-{date}.json")
    meta = {
        "date": date,
        "device": device,
        "device_name": _device_name(device),
        "backbone": args.backbone,
        "pretrained": args.pretrained,
        "precision": args.precision,
        "chunk_size": args.chunk_size,
        "checkpointing": args.checkpointing,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]) if argv is None else " ".join(argv),
        "isolated_subprocesses": isolate,
    }
    try:
        import open_clip

        meta["open_clip"] = open_clip.__version__
    except Exception:  # noqa: BLE001 - informative only
        pass

    results: list[dict] = []
    if args.append and out.exists():
        old = json.loads(out.read_text())
        results = old.get("results", [])
        meta = {**old.get("meta", {}), "runs": [*old.get("meta", {}).get("runs", []), meta]}
    else:
        meta["runs"] = [dict(meta)]

    cache: dict = {}
    timing = args.timing
    if timing == "auto":
        timing = "paired" if isolate and len(args.styles) == 2 else "separate"
    if timing == "paired" and (device.startswith("cuda") or len(args.styles) != 2):
        # paired setups share one backbone; reference-style casts it to half on CUDA
        raise SystemExit("--timing paired needs both styles and the CPU; use --timing separate")
    for n_cls in args.classes:
        for name in args.methods:
            for phase in args.phases:
                batch = args.batch_size
                if name == "cocoop" and phase == "train":
                    batch = min(args.batch_size, args.cocoop_batch_size)
                specs = {
                    style: Spec(
                        method=name, n_cls=n_cls, phase=phase, style=style, backbone=args.backbone,
                        pretrained=args.pretrained, batch_size=batch, eval_batch_size=args.eval_batch_size,
                        steps=args.steps, warmup=args.warmup, device=device, precision=args.precision,
                        chunk_size=args.chunk_size, checkpointing=args.checkpointing, threads=args.threads,
                    )
                    for style in args.styles
                }
                t0 = time.perf_counter()
                recs = _measure_group(specs, args, isolate, timing, cache)
                wall = time.perf_counter() - t0
                for rec in recs:
                    rec["wall_s"] = wall
                    rec["loadavg_after"] = os.getloadavg()
                    old = next((r for r in results if _key(r) == _key(rec)), None)
                    results = [r for r in results if _key(r) != _key(rec)] + [merge_record(old, rec)]
                    msg = rec.get("error") or rec.get("memory_error") or ", ".join(
                        x for x in (f"{rec['images_per_s']:.2f} img/s" if rec.get("images_per_s") else "",
                                    f"peak {rec['peak_mem_mib']:.0f} MiB" if rec.get("peak_mem_mib") is not None
                                    else "",
                                    " ".join(f"{k} {v:.2f} s" for k, v in rec.get("components_median_s", {}).items()))
                        if x)
                    print(f"[{name} n_cls={n_cls} {phase} {rec['style']}] {msg}", flush=True)
                print(f"  ({wall:.0f} s)", flush=True)
                _write(out, meta, results)
    print(markdown(pair_rows(results), meta))
    return 0


def _measure_group(specs: dict[str, Spec], args, isolate: bool, timing: str, cache: dict) -> list[dict]:
    """Ours and reference-style for one (method, classes, phase): timing, then memory."""
    recs: dict[str, dict] = {}
    if args.measure == "components":
        job = {"components": [dataclasses.asdict(specs["ours"]), dataclasses.asdict(specs["reference"])]}
        return run_job(job, isolate, cache)
    if args.measure in ("both", "timing") and timing == "paired":
        for rec in run_job({"pair": [dataclasses.asdict(specs["ours"]), dataclasses.asdict(specs["reference"])]},
                           isolate, cache):
            recs[rec["style"]] = rec
    for style, spec in specs.items():
        if args.measure == "memory" or (timing == "paired" and args.measure == "both"):
            what = "memory"  # a short run of its own (paired timing holds two models in one process)
            spec = dataclasses.replace(spec, warmup=0, steps=args.memory_steps)
        elif timing == "separate":
            what = args.measure
        else:
            continue
        if isolate:
            avail = _available_mib()
            spec.mem_cap_mib = args.mem_cap_gb * 1024 if args.mem_cap_gb else (0.85 * avail if avail else None)
        (rec,) = run_job({"spec": dataclasses.asdict(spec), "what": what}, isolate, cache)
        if what == "memory" and "error" in rec:
            rec["memory_error"] = rec.pop("error")
        if style in recs:
            recs[style].update({k: rec[k] for k in MEMORY_KEYS if k in rec})
        else:
            recs[style] = rec
    return list(recs.values())


TIMING_KEYS = ("images_per_s", "step_s_median", "step_s_all", "text_once_s", "timing", "error")
MEMORY_KEYS = ("peak_mem_mib", "peak_mem_mib_lower_bound", "memory", "hwm_reset", "memory_steps", "mem_cap_mib",
               "memory_error")


def merge_record(old: dict | None, new: dict) -> dict:
    """``new`` over ``old`` (same configuration): a timing-only or memory-only run keeps the other half."""
    if old is None:
        return new
    keep = {}
    if "images_per_s" not in new and "error" not in new:
        keep.update({k: old[k] for k in TIMING_KEYS if k in old})
    if "peak_mem_mib" not in new and "memory_error" not in new:
        keep.update({k: old[k] for k in MEMORY_KEYS if k in old})
    return {**new, **keep}


def _write(out: Path, meta: dict, results: list[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = pair_rows(results)
    out.write_text(json.dumps({"meta": meta, "results": results, "rows": rows}, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(rows, meta))


if __name__ == "__main__":
    sys.exit(main())
