"""One configured method on a backbone, with its batch, ready to step and timed step by step.

A timed unit is an optimizer step (training), a feature extraction (methods that do not train by
gradient: frozen image encoder under ``torch.no_grad``) or one test batch (evaluation). Images/s:
``batch / median(step time)`` in training; in evaluation
``steps * batch / (t_text + steps * median(t_batch))``, where ``t_text`` is the one-time class text
encoding on entering ``method.cached_text()`` (ours; 0 reference-style, which re-encodes the text
inside every batch).
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import sys
import time

from .spec import Spec, make_classnames
from .styles import (
    caches_text,
    configure_style,
    legacy_fp16_fallback,
    precision_name,
    text_sequences,
    text_tokens,
)


def sync(device) -> None:
    """Wait for the device's queued work (CUDA), so a wall-clock interval covers it."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fill_cache(method, n_cls: int, gen) -> None:
    """A cache model (Tip-Adapter, -F) timed with the cache its parameter count describes
    (``count_shots`` random image features per class; validation empty, so nothing is searched)."""
    import torch

    shots = getattr(method, "count_shots", 0)
    if not shots:
        return
    dim = method.backbone.embed_dim
    feats = torch.randn(shots * n_cls, dim, generator=gen).to(method.backbone.device)
    labels = torch.arange(n_cls).repeat(shots).to(method.backbone.device)
    method.fit_features((feats, labels), (feats[:0], labels[:0]))


class Setup:
    """One configured method on a backbone, with its batch, ready to step."""

    def __init__(self, spec: Spec, cache: dict):
        import torch

        from upt.backbone import load_backbone
        from upt.engine.config import resolve
        from upt.engine.precision import resolve_precision
        from upt.methods import build_method

        self.spec = spec
        self.device = device = torch.device(spec.device)
        if spec.threads:
            torch.set_num_threads(spec.threads)
        torch.manual_seed(spec.seed)
        self.prec = prec = resolve_precision(precision_name(spec, device), device)

        key = (spec.backbone, spec.pretrained, str(device))
        if key not in cache:
            cache.clear()
            cache[key] = load_backbone(spec.backbone, spec.pretrained, device)
        backbone = cache[key]
        backbone.model.to(prec.model_dtype)  # a cached backbone may have been cast by legacy-fp16

        names = make_classnames(spec.n_cls, spec.seed)
        # the method's preset for this backbone: its paper's settings (on the 2-layer tiny backbone, the
        # prompt depths that fit it)
        config = resolve({"method": spec.method, "backbone": spec.backbone}).method_config
        self.method = method = build_method(spec.method, backbone, names, spec.template, config)
        fill_cache(method, spec.n_cls, gen=torch.Generator().manual_seed(spec.seed))
        self.batch = batch = spec.batch_size if spec.phase == "train" else spec.eval_batch_size
        n_seq = text_sequences(method, spec, batch)
        configure_style(method, spec, n_seq)
        prec.prepare(backbone, method)
        self.precision_fallback = None
        if prec.name == "legacy-fp16":
            fallback = legacy_fp16_fallback(backbone, method, device)
            if fallback is not None:
                self.prec, self.precision_fallback = fallback
        prec = self.prec
        self.cache_text = caches_text(method, spec)

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
            "text_tokens": text_tokens(method),
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

    def timed(self, fn, record: bool) -> None:
        """Run ``fn`` once, timed; ``record``: keep the time (a timed step), else a warm-up."""
        sync(self.device)
        t0 = time.perf_counter()
        fn()
        sync(self.device)
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
        self.timed(fn, record)

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
        sync(self.device)
        t0 = time.perf_counter()
        with torch.no_grad(), self.prec.autocast():
            self._ctx.__enter__()
        sync(self.device)
        self.text_s = time.perf_counter() - t0

    def end_eval(self) -> None:
        """Leave ``cached_text()`` if :meth:`begin_eval` entered it."""
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None

    def timing(self) -> dict:
        """Images/s and the step times behind it."""
        med = statistics.median(self.times)
        if self.mode == "eval":
            n = len(self.times)
            per_s = n * self.batch / (self.text_s + n * med)
        else:
            per_s = self.batch / med
        return {"images_per_s": per_s, "step_s_median": med, "step_s_all": self.times, "text_once_s": self.text_s}

    def close(self) -> None:
        """Free the method, batch and optimizer (and the CUDA cache)."""
        import torch

        self.end_eval()
        for name in ("method", "images", "labels", "opt", "scaler"):
            if hasattr(self, name):
                delattr(self, name)
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
