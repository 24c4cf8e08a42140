"""upt: adapt a frozen CLIP to a new classification task from a few labelled images by prompt tuning.

The public API (each name documented where it lives; ``import upt`` stays light, names load on use):

- :func:`run_config` -> :class:`RunConfig`: a run's settings, resolved as ``upt train`` resolves flags;
- :func:`train` / :func:`evaluate`: write a run folder / evaluate one; both return the results record;
- :class:`Predictor`: classify new images with a run folder;
- :func:`image_folder`: labelled in-memory images (tensors, arrays, a dataset object) as a dataset;
- :func:`load_backbone`, :func:`build_method`, :func:`list_methods`, :func:`load_dataset`: the parts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "RunConfig": "upt.engine.config",
    "run_config": "upt.api",
    "train": "upt.api",
    "evaluate": "upt.api",
    "image_folder": "upt.api",
    "list_methods": "upt.api",
    "Predictor": "upt.predict",
    "load_backbone": "upt.backbone",
    "build_method": "upt.methods",
    "load_dataset": "upt.data",
}
__all__ = ["Predictor", "RunConfig", "__version__", "build_method", "evaluate", "image_folder", "list_methods",
           "load_backbone", "load_dataset", "run_config", "train"]

if TYPE_CHECKING:
    from upt.api import evaluate, image_folder, list_methods, run_config, train
    from upt.backbone import load_backbone
    from upt.data import load_dataset
    from upt.engine.config import RunConfig
    from upt.methods import build_method
    from upt.predict import Predictor


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:  # lazy: `import upt` does not import torch
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'upt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
