"""What a sweep will cost before it runs: image-encoder passes with and without the feature store,
and wall time on this device from a short calibration of the backbone.

Passes count images through the image encoder. Frozen-encoder methods the store serves (zero-shot,
linear probe, CoOp, CoCoOp) encode each evaluation split once per sweep with the store, once per
run without it; their training images are encoded once when the training transform is deterministic
(features are trained on; the linear probe's closed-form fit), else every epoch. Methods that prompt
or adapt the image encoder (VPT, MaPLe, UPT, ...) pass every training image forward and backward
every epoch and encode their evaluation images themselves. Sizes come from the catalog (the official
split sizes) or, for ``folder:`` data, from reading the folder; a few-shot training set counts
``shots × classes`` images, its validation set ``min(shots, 4) × classes``. The time estimate is
passes × seconds per image measured on random images at the backbone's input size (forward for
encoding, forward and backward for prompted training); text encoding and image decoding are left
out, so read it as a lower bound for the image side.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from upt.sweep.plan import Job


@dataclass(frozen=True)
class Sizes:
    """Images of one dataset (class half): classes, train, val and test."""

    classes: int
    train: int
    val: int
    test: int


@functools.cache
def dataset_sizes(dataset: str, data_root: str | None, classes: str) -> Sizes:
    """Sizes from the catalog, or by reading a ``folder:`` dataset; a class half scales them by its classes."""
    from upt.data import get_spec, load_dataset

    if dataset.startswith("folder:"):
        splits = load_dataset(dataset, data_root)
        n, train, val, test = splits.num_classes, len(splits.train), len(splits.val), len(splits.test)
    else:
        spec = get_spec(dataset)
        n, train, val, test = spec.num_classes, spec.n_train or 0, spec.n_val or 0, spec.n_test or 0
    if classes == "all":
        return Sizes(n, train, val, test)
    half = math.ceil(n / 2) if classes == "base" else n - math.ceil(n / 2)
    return Sizes(half, train * half // n, val * half // n, test * half // n)


@dataclass
class Passes:
    """Image-encoder passes of a set of runs."""

    runs: int = 0
    shared: int = 0  # evaluation encodings the store can share (frozen encoders)
    frozen: int = 0  # other encodings by a frozen encoder (training features, augmented epochs)
    prompted: int = 0  # forward + backward passes of a prompted encoder in training
    prompted_eval: int = 0  # evaluation passes of a prompted encoder
    shared_keys: set = field(default_factory=set)  # the distinct evaluation sets (with the store: once each)

    def without_store(self) -> int:
        return self.shared + self.frozen + self.prompted + self.prompted_eval

    def with_store(self, sizes: dict) -> int:
        return sum(sizes[k] for k in self.shared_keys) + self.frozen + self.prompted + self.prompted_eval


def job_passes(job: Job, into: Passes) -> None:
    """Add ``job``'s passes to ``into``."""
    from upt.engine.loaders import DETERMINISTIC_TRANSFORMS
    from upt.methods import get_method_class

    cfg = job.filled
    cls = get_method_class(cfg.method)
    frozen = bool(cls.frozen_image_encoder)
    own = dataset_sizes(cfg.dataset, cfg.data_root, cfg.classes)
    evals = [(cfg.dataset, cfg.classes), *job.evals]
    into.runs += 1
    if cls.needs_training_data:
        train = cfg.shots * own.classes if cfg.shots > 0 else own.train
        val = min(cfg.shots, 4) * own.classes if cfg.shots > 0 else own.val
        if not cls.trains_by_gradient:
            into.frozen += train + val
        elif frozen and (cfg.data.feature_views or cfg.data.train_transform in DETERMINISTIC_TRANSFORMS):
            into.frozen += train * max(1, cfg.data.feature_views)
        elif frozen:
            into.frozen += train * cfg.optim.epochs
        else:
            into.prompted += train * cfg.optim.epochs
    for dataset, classes in evals:
        n = dataset_sizes(dataset, cfg.data_root, classes).test
        if frozen:
            into.shared += n
            into.shared_keys.add((dataset, classes, n))
        else:
            into.prompted_eval += n


def calibrate(backbone: str, pretrained: str | None, quick_gelu: bool | None, device: str, precision: str,
              batch: int = 16, repeats: int = 3) -> tuple[float, float, str]:
    """Seconds per image of the image encoder on this device: forward (no grad) and forward + backward.

    The backbone is built with random weights (the cost is the same; nothing is downloaded). Returns
    (forward s/img, train s/img, a description of what was timed).
    """
    import torch

    from upt.backbone import load_backbone
    from upt.engine.precision import resolve_precision
    from upt.engine.rundir import resolve_device

    dev = resolve_device(device)
    bb = load_backbone(backbone, None, dev, quick_gelu=quick_gelu)
    prec = resolve_precision(precision, dev)
    x = torch.randn(batch, 3, bb.preprocess.size, bb.preprocess.size, device=dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def forward() -> None:
        with torch.no_grad(), prec.autocast():
            bb.vision.encode_images(x)

    def train() -> None:
        xi = x.clone().requires_grad_(True)  # gradients flow through the frozen encoder, as prompts need
        with prec.autocast():
            out = bb.vision.encode_images(xi)
        out.float().sum().backward()

    timings = []
    for step in (forward, train):
        step()
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        sync()
        timings.append((time.perf_counter() - start) / (repeats * batch))
    what = f"{backbone} on {dev.type}, {prec.name}, {repeats} batches of {batch}"
    return timings[0], timings[1], what


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def cost_report(jobs: Sequence[Job], calibration: tuple[float, float, str] | None = None) -> str:
    """The dry run's cost table: per method, runs, passes without and with the store, estimated time."""
    if not jobs:
        return "no runs"
    by_method: dict[str, Passes] = {}
    for job in jobs:
        job_passes(job, by_method.setdefault(job.config.method, Passes()))
    sizes = {key: key[2] for p in by_method.values() for key in p.shared_keys}
    if calibration is None:
        c = jobs[0].filled
        calibration = calibrate(c.backbone, c.pretrained, c.quick_gelu, c.device, c.precision)
    fwd, train, what = calibration

    def seconds(p: Passes, store: bool) -> float:
        shared = sum(sizes[k] for k in p.shared_keys) if store else p.shared
        return (shared + p.frozen + p.prompted_eval) * fwd + p.prompted * train

    lines = [f"{'method':14s} {'runs':>5s} {'passes, no store':>17s} {'with store':>12s} {'est. time, no store':>20s} "
             f"{'with store':>11s}"]
    total = Passes()
    for method, p in by_method.items():
        lines.append(f"{method:14s} {p.runs:5d} {p.without_store():17,d} {p.with_store(sizes):12,d} "
                     f"{_hms(seconds(p, False)):>20s} {_hms(seconds(p, True)):>11s}")
        total.runs += p.runs
        for name in ("shared", "frozen", "prompted", "prompted_eval"):
            setattr(total, name, getattr(total, name) + getattr(p, name))
        total.shared_keys |= p.shared_keys
    lines.append(f"{'total':14s} {total.runs:5d} {total.without_store():17,d} {total.with_store(sizes):12,d} "
                 f"{_hms(seconds(total, False)):>20s} {_hms(seconds(total, True)):>11s}")
    lines.append(f"image-encoder passes (images through the image encoder) and time estimated from {what}: "
                 f"{1 / fwd:,.0f} img/s forward, {1 / train:,.0f} img/s forward+backward; text encoding and "
                 "image decoding not included")
    return "\n".join(lines)
