"""Datasets for few-shot CLIP adaptation: the CoOp benchmark layout read unchanged, own data, synthetic shapes.

Typical use::

    splits = load_dataset("dtd", "/data")                 # or "folder:/path/to/my/images"
    splits = fewshot_splits(splits, k=16, seed=1)          # info["fewshot"] holds the chosen files
    splits = base_new_split(splits, "base")                # base-to-new protocol
    train = ImageDataset(splits.train, build_transform(preprocess, train=True), cache=True)

Torch-dependent names (``ImageDataset``, ``build_transform``, ``TRANSFORMS``) load on first use, so
reading the catalog (``upt list datasets``, ``upt data check``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from upt.data.base import SPLITS, DatasetSplits, Sample, clean_classname
from upt.data.catalog import (
    CATALOG,
    DatasetSpec,
    Download,
    get_spec,
    list_datasets,
    manual_steps,
    resolve_root,
)
from upt.data.check import CheckReport, check_dataset
from upt.data.fewshot import (
    base_new_split,
    fewshot_from_manifest,
    fewshot_indices,
    fewshot_splits,
    subset_classes,
)
from upt.data.images import ImageReadError, load_image, verify_images
from upt.data.readers import canonical_dataset, load_dataset
from upt.data.shapes import SHAPES, make_shapes

_LAZY = {"ImageDataset": "upt.data.dataset", "build_transform": "upt.data.transforms",
         "TRANSFORMS": "upt.data.transforms"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'upt.data' has no attribute {name!r}")

__all__ = [
    "CATALOG",
    "SHAPES",
    "SPLITS",
    "TRANSFORMS",
    "CheckReport",
    "DatasetSpec",
    "DatasetSplits",
    "Download",
    "ImageDataset",
    "ImageReadError",
    "Sample",
    "base_new_split",
    "build_transform",
    "canonical_dataset",
    "check_dataset",
    "clean_classname",
    "fewshot_from_manifest",
    "fewshot_indices",
    "fewshot_splits",
    "get_spec",
    "list_datasets",
    "load_dataset",
    "load_image",
    "make_shapes",
    "manual_steps",
    "resolve_root",
    "subset_classes",
    "verify_images",
]
