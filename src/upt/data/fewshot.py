"""Seeded few-shot subsets and the base/new class split, as pure functions.

CoOp samples few-shot subsets with the global RNG and caches them as pickles, so its subsets differ
across machines. Here each class's K images are the K with the smallest
``sha256("upt-fewshot/{seed}/{label}/{position}")``: identical on every machine, Python version and
``PYTHONHASHSEED``, independent of the other classes, and nested in K (the 4-shot images of a seed
include its 2-shot ones, which CoOp does not promise). The chosen images are returned in ``info["fewshot"]`` so a run can save
them and :func:`fewshot_from_manifest` can re-create the subset exactly.

Order, as in CoOp: take the few-shot subset of all classes first, then the base/new split.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Literal

from upt.data.base import DatasetSplits, Sample
from upt.errors import UptError

logger = logging.getLogger(__name__)
VAL_SHOTS_MAX = 4


def _key(seed: int, label: int, position: int) -> bytes:
    return hashlib.sha256(f"upt-fewshot/{seed}/{label}/{position}".encode()).digest()


def fewshot_indices(labels: Sequence[int], k: int, seed: int) -> list[int]:
    """Pick ``k`` indices per class (all of a class with fewer), reproducibly.

    Args:
        labels: The label of every sample, in dataset order.
        k: Shots per class (>= 1).
        seed: Few-shot seed.

    Returns:
        Sorted indices into ``labels``.
    """
    if k < 1:
        raise UptError(f"Shots must be at least 1, got {k}; use the full training split instead of 0 shots.")
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(int(y), []).append(i)
    chosen: list[int] = []
    for y, idx in by_class.items():
        if len(idx) <= k:
            chosen += idx
        else:
            ranked = sorted(range(len(idx)), key=lambda j, y=y: _key(seed, y, j))
            chosen += [idx[j] for j in ranked[:k]]
    return sorted(chosen)


def _relative(path: str, base: str | None) -> str:
    return (os.path.relpath(path, base) if base else path).replace(os.sep, "/")


def fewshot_splits(splits: DatasetSplits, k: int, seed: int) -> DatasetSplits:
    """Return ``splits`` with K shots per class in train and min(K, 4) in val; test untouched.

    ``info["fewshot"]`` holds shots, seed and the chosen train/val files relative to
    ``info["dataset_dir"]`` (absolute when that is unknown): write it next to the run's results.
    """
    train = [splits.train[i] for i in fewshot_indices([s.label for s in splits.train], k, seed)]
    val_k = min(k, VAL_SHOTS_MAX)
    val = [splits.val[i] for i in fewshot_indices([s.label for s in splits.val], val_k, seed)] if splits.val else []
    counts = [0] * splits.num_classes
    for s in train:
        counts[s.label] += 1
    short = {splits.classnames[y]: n for y, n in enumerate(counts) if n < k}
    if short and splits.train:
        logger.warning("%d class(es) have fewer than %d training images and use all they have: %s",
                       len(short), k, ", ".join(f"{c} ({n})" for c, n in list(short.items())[:5]))
    base = splits.info.get("dataset_dir")
    out = splits.replace(train=train, val=val)
    out.info["fewshot"] = {
        "shots": k, "seed": seed, "val_shots": val_k, "relative_to": base, "short_classes": short,
        "train": [_relative(s.path, base) for s in train], "val": [_relative(s.path, base) for s in val],
    }
    return out


def fewshot_from_manifest(splits: DatasetSplits, manifest: Mapping) -> DatasetSplits:
    """Re-create a few-shot subset from a saved ``info["fewshot"]`` record.

    Raises:
        UptError: A saved file is not in the dataset's train/val split.
    """
    base = splits.info.get("dataset_dir")
    out = splits.replace()
    for name in ("train", "val"):
        index = {_relative(s.path, base): s for s in splits.split(name)}
        missing = [p for p in manifest[name] if p not in index]
        if missing:
            raise UptError(f"Saved few-shot {name} image {missing[0]} (and {len(missing) - 1} more) is not in the "
                           f"{name} split of {splits.name}; the dataset or its split file has changed.")
        setattr(out, name, [index[p] for p in manifest[name]])
    out.info["fewshot"] = dict(manifest)
    return out


def subset_classes(splits: DatasetSplits, labels: Sequence[int]) -> DatasetSplits:
    """Keep only the classes ``labels``, relabelled 0.. in the order given."""
    new = {int(y): i for i, y in enumerate(labels)}
    if len(new) != len(labels) or any(not 0 <= y < splits.num_classes for y in new):
        raise UptError(f"Class subset {list(labels)} must be distinct labels in 0..{splits.num_classes - 1}.")

    def keep(samples: list[Sample]) -> list[Sample]:
        return [Sample(s.path, new[s.label]) for s in samples if s.label in new]

    out = splits.replace(classnames=[splits.classnames[y] for y in new], train=keep(splits.train),
                         val=keep(splits.val), test=keep(splits.test))
    out.info["class_subset"] = list(new)
    return out


def base_new_split(splits: DatasetSplits, which: Literal["base", "new", "all"]) -> DatasetSplits:
    """The base-to-new protocol: classes sorted by label, the first ceil(n/2) are base, the rest new.

    Each half is relabelled from 0; ``"all"`` returns the splits unchanged.
    """
    if which not in ("base", "new", "all"):
        raise UptError(f"Unknown class subset '{which}'; use base, new or all.")
    if which == "all":
        return splits.replace()
    m = math.ceil(splits.num_classes / 2)
    if min(m, splits.num_classes - m) < 2:
        logger.warning("WARNING: %s has %d classes, so base-to-new splits them into %d base and %d new: a half with "
                       "one class is classified right whatever the model does; use a dataset with 4 or more classes.",
                       splits.name, splits.num_classes, m, splits.num_classes - m)
    labels = range(m) if which == "base" else range(m, splits.num_classes)
    out = subset_classes(splits, list(labels))
    out.info["classes"] = which
    return out
