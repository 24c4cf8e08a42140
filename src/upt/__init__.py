"""upt: adapt a frozen CLIP to a new classification task from a few labelled images by prompt tuning."""

__version__ = "0.1.0"
