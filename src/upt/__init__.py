"""upt: adapt a frozen CLIP to a new classification task from a few labelled images by prompt tuning."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    if name == "Predictor":  # lazy: `import upt` stays light
        from upt.predict import Predictor

        return Predictor
    raise AttributeError(f"module 'upt' has no attribute {name!r}")
