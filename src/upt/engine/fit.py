"""Training a method on its few-shot images: a closed-form fit on frozen image features, gradient
steps (resumable epoch by epoch), or the first then the second (Tip-Adapter-F)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from upt.engine import distributed as dist
from upt.engine.config import RunConfig
from upt.engine.features import encoded
from upt.engine.loaders import DETERMINISTIC_TRANSFORMS, EpochLoaders, FeatureEpochs, encode_all, image_loader
from upt.engine.progress import Progress
from upt.engine.resume import keep_epochs, load_checkpoint, require_finite, save_checkpoint
from upt.engine.rundir import append_jsonl
from upt.engine.train import Trainer

log = logging.getLogger(__name__)


def fit(method, splits, cfg: RunConfig, precision, out: Path, resume: bool) -> dict:
    """Train ``method`` on ``splits.train`` as it trains: :func:`fit_features`, :func:`fit_gradient`, or both
    (a closed-form start, then gradient steps). Returns the training statistics for ``results.json``."""
    stats: dict = {"train_images": 0, "train_seconds": 0.0}
    if method.needs_training_data and (method.fit_before_training or not method.trains_by_gradient):
        stats = fit_features(method, splits, cfg, precision)
    if method.trains_by_gradient:
        fitted = stats
        stats = fit_gradient(method, splits, cfg, precision, out, resume)
        if "fit" in fitted:  # a closed-form start (Tip-Adapter-F's cache), then gradient steps
            stats.update(fit=fitted["fit"], train_seconds=stats["train_seconds"] + fitted["train_seconds"])
    return stats


def _features(method, samples, split: str, cfg: RunConfig, precision, **cache):
    """The method's image features and labels of ``samples`` under the evaluation transform: from the
    feature store when it serves the method, else encoded now."""
    stored = encoded(method, samples, split, cfg.data.eval_transform, cfg, precision)
    if stored is not None:
        return stored
    loader = image_loader(samples, method.backbone.preprocess, cfg.data.eval_transform, False,
                          cfg.data.eval_batch_size, cfg.data.num_workers, **cache)
    return encode_all(method, loader, precision)


def fit_features(method, splits, cfg: RunConfig, precision) -> dict:
    """:meth:`fit_features` on frozen image features: the training images with the evaluation
    transform, or ``method.fit_views()`` augmented views of each (stacked (V, N, D)), and the validation images."""
    start = time.perf_counter()
    views = method.fit_views()
    if views:
        encoded_views = FeatureEpochs(method, splits.train, method.backbone.preprocess, cfg, precision, views).views
        train = torch.stack([f for f, _ in encoded_views]), encoded_views[0][1]
    else:
        train = _features(method, splits.train, "train", cfg, precision,
                          cache=cfg.data.cache_images, short_side=cfg.data.cache_short_side)
    first = train[0] if train[0].dim() == 2 else train[0][0]
    val = _features(method, splits.val, "val", cfg, precision) if splits.val else (first[:0], train[1][:0])
    fit = method.fit_features(train, val)
    return {"fit": fit, "train_seconds": time.perf_counter() - start, "train_images": len(splits.train)}


def fit_gradient(method, splits, cfg: RunConfig, precision, out: Path, resume: bool) -> dict:
    epochs = cfg.epochs()
    main = dist.is_main()
    if epochs <= cfg.optim.warmup_epochs:
        log.warning("WARNING: all %d epoch(s) are warm-up epochs at the constant lr %g, so the prompts barely move "
                    "and the run reports about what it started from; train more than optim.warmup_epochs=%d epochs, "
                    "or set optim.warmup_epochs=0.", epochs, cfg.optim.warmup_lr, cfg.optim.warmup_epochs)
    views = cfg.data.feature_views or (1 if cfg.data.train_transform in DETERMINISTIC_TRANSFORMS else 0)
    if views and method.frozen_image_encoder:
        batches = FeatureEpochs(method, splits.train, method.backbone.preprocess, cfg, precision, views)
        forward = dist.wrap(method, method.logits)
        log.info("training on cached image features (%d view%s per image)", views, "s" if views > 1 else "")
    else:
        batches = EpochLoaders(splits.train, method.backbone.preprocess, cfg)
        forward = dist.wrap(method)
    schedule = method.step_schedule(epochs, len(batches.sampler), cfg.shots)
    if schedule is not None:  # the method's reference counts optimiser steps, not epochs
        epochs = -(-schedule.steps // len(batches.sampler))
    trainer = Trainer(method, cfg.optim, epochs, precision, schedule)
    start_epoch, seconds, images, stats = 0, 0.0, 0, None
    saved = load_checkpoint(out, method.backbone.device) if resume else None
    metrics_file = out / "metrics.jsonl"
    if saved is not None:
        tensors, state = saved
        method.load_trainable_state_dict({k[len("method."):]: v for k, v in tensors.items() if k.startswith("method.")})
        method.load_training_state({k[len("state."):]: v for k, v in tensors.items() if k.startswith("state.")})
        trainer.restore(tensors, state["trainer"])
        start_epoch, seconds, images = state["epoch"], state["train_seconds"], state["train_images"]
        stats = state.get("last_epoch")
        if main:
            keep_epochs(metrics_file, start_epoch)
        log.info("resumed from the end of epoch %d", start_epoch)
    elif resume:
        log.info("nothing to resume in %s; starting from the beginning", out)

    for epoch in range(start_epoch, epochs):
        if trainer.done():
            break
        with Progress(batches.images, f"epoch {epoch + 1}/{epochs}", enabled=main) as bar:
            stats = trainer.run_epoch(epoch, batches(epoch), forward,
                                      on_step=lambda r: bar.update(r["images"], r["loss"]),
                                      global_size=batches.global_size)
        seconds += stats["seconds"]
        images += stats["images"]
        stats.update(method.on_epoch_end(epoch, epochs) or {})  # every rank: the tensors stay identical
        if not main:
            continue
        trained = method.trainable_state_dict()
        require_finite(trained, epoch, trainer)
        append_jsonl(metrics_file, stats)
        log.info("epoch %d/%d  loss %.4f  train acc %.1f%%  lr %.2e  %.1f img/s", epoch + 1, epochs, stats["loss"],
                 stats["train_accuracy"], stats["lr"], stats["images"] / max(stats["seconds"], 1e-9))
        opt_tensors, trainer_meta = trainer.state()
        save_checkpoint(out, {**{f"method.{k}": v for k, v in trained.items()}, **opt_tensors,
                              **{f"state.{k}": v for k, v in method.training_state().items()}},
                        {"epoch": epoch + 1, "trainer": trainer_meta, "train_seconds": seconds,
                         "train_images": images, "last_epoch": stats})
    return {"epochs": epochs, "steps": trainer.step, "final_loss": stats["loss"] if stats else None,
            "train_seconds": seconds, "train_images": images}
