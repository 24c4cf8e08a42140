"""Text normalisation shared by the data layer (class names read from disk) and the methods (class
names put into prompts): neither depends on the other for it."""

from __future__ import annotations

from collections.abc import Mapping


def clean_classname(name: str, renames: Mapping[str, str] | None = None) -> str:
    """Apply a dataset's renames, then turn underscores into spaces and collapse runs of whitespace
    (CoOp does this in the model: ``name.replace("_", " ")``)."""
    if renames:
        name = renames.get(name, name)
    return " ".join(name.replace("_", " ").split())
