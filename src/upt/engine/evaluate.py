"""evaluate(method, loader) -> metrics: accuracy, per-class accuracy, macro F1, throughput."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from upt.engine.precision import Precision, resolve_precision


def classification_metrics(preds: np.ndarray, labels: np.ndarray, classnames: Sequence[str]) -> dict:
    """Accuracy, per-class accuracy and macro F1, in percent (classes absent from ``labels`` skipped).

    ``per_class_accuracy`` is a list in class-index order, one ``{"index", "class", "accuracy",
    "n_images"}`` per class present in ``labels``: keyed by index, since two classes may share a
    name (ImageNet has two "crane"s), with the name beside it.
    """
    n = len(classnames)
    conf = np.zeros((n, n), dtype=np.int64)
    np.add.at(conf, (labels, preds), 1)
    support = conf.sum(1)
    predicted = conf.sum(0)
    tp = np.diag(conf)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    return {
        "accuracy": float(100.0 * tp.sum() / max(1, len(labels))),
        "macro_f1": float(100.0 * f1[present].mean()) if present.any() else 0.0,
        "per_class_accuracy": [{"index": i, "class": classnames[i], "accuracy": float(100.0 * recall[i]),
                                "n_images": int(support[i])} for i in range(n) if present[i]],
        "n_images": int(len(labels)),
    }


@torch.no_grad()
def predict_logits(
    method: torch.nn.Module,
    batches: Iterable,
    precision: Precision | None = None,
    progress=None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Logits and labels over ``batches`` of (images, labels, ...); class text computed once.

    Returns logits (N, n_cls) on the CPU, labels (N,) and images per second.
    """
    device = method.backbone.device
    precision = precision or resolve_precision("fp32", device)
    method.eval()
    out, labels, seen = [], [], 0
    start = time.perf_counter()
    with precision.autocast(), method.cached_text():
        for batch in batches:
            images = batch[0].to(device, non_blocking=True)
            out.append(method(images).float().cpu())
            labels.append(batch[1].cpu())
            seen += len(images)
            if progress is not None:
                progress.update(len(images))
    elapsed = max(time.perf_counter() - start, 1e-9)
    return torch.cat(out), torch.cat(labels), seen / elapsed


def evaluate(method, batches, classnames: Sequence[str], precision: Precision | None = None, progress=None) -> dict:
    """Metrics of ``method`` over ``batches``; adds ``eval_images_per_s``."""
    from upt.engine.distributed import gather

    logits, labels, speed = predict_logits(method, batches, precision, progress)
    parts = gather((logits, labels, speed))  # sharded evaluation: every rank's part, in rank order
    logits, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    return _metrics(logits, labels, classnames, sum(p[2] for p in parts))


def _metrics(logits: torch.Tensor, labels: torch.Tensor, classnames: Sequence[str], images_per_s: float) -> dict:
    return {**classification_metrics(logits.argmax(1).numpy(), labels.numpy(), classnames),
            "eval_images_per_s": images_per_s}


@torch.no_grad()
def logits_from_features(method, raw: torch.Tensor, batch_size: int, precision: Precision) -> torch.Tensor:
    """Logits (N, n_cls) on the CPU from the frozen encoder's raw features, batch by batch as
    :func:`predict_logits` computes them from images: the same numbers (see :mod:`upt.engine.features`)."""
    device = method.backbone.device
    method.eval()
    out = []
    with precision.autocast(), method.cached_text():
        for s in range(0, len(raw), batch_size):
            out.append(method.logits(method.image_features(raw[s : s + batch_size].to(device))).float().cpu())
    return torch.cat(out)


def evaluate_split(method, samples, classnames: Sequence[str], cfg, precision: Precision, dataset: str,
                   progress=None) -> dict:
    """Metrics of ``method`` (of run ``cfg``) on the evaluation ``samples`` of ``dataset``; adds
    ``eval_images_per_s``.

    A method the feature store serves (:func:`upt.engine.features.store_for`) reads the frozen encoder's
    features from the store (``compute.feature_store``), encoding them only when the store lacks them;
    every other method, and sharded evaluation, encodes the images.
    """
    from upt.engine.features import store_for, stored_features
    from upt.engine.loaders import eval_loader

    store = store_for(method, cfg)
    if store is None:
        return evaluate(method, eval_loader(samples, method.backbone.preprocess, cfg), classnames, precision, progress)
    start = time.perf_counter()
    raw, labels = stored_features(method, samples, dataset, "test", cfg.data.eval_transform, cfg, precision, store)
    logits = logits_from_features(method, raw, cfg.data.eval_batch_size, precision)
    if progress is not None:
        progress.update(len(samples))
    return _metrics(logits, labels, classnames, len(samples) / max(time.perf_counter() - start, 1e-9))
