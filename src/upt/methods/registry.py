"""The registered methods by name: their typed configs, building one on a backbone, and the table
``upt list methods`` prints."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from upt.backbone import Backbone
from upt.errors import UptError, unknown_name
from upt.fields import typed_fields
from upt.methods.base import REGISTRY, PromptMethod


def make_config(cls: type[PromptMethod], values: dict | Any | None) -> Any:
    """Build ``cls.Config`` from a dict, checking the keys; a Config instance passes through."""
    if values is None:
        return cls.Config()
    if isinstance(values, cls.Config):
        return values
    names = {f.name for f in dataclasses.fields(cls.Config)}
    bad = sorted(set(values) - names)
    if bad:
        raise UptError(f"Unknown option(s) {bad} for method '{cls.name}'; its options are {sorted(names)}.")
    if not isinstance(values, dict):
        raise UptError(f"method_config must be a mapping of option names to values, got {values!r}.")
    return cls.Config(**typed_fields(cls.Config, values, "method_config."))


def get_method_class(name: str) -> type[PromptMethod]:
    if name not in REGISTRY:
        raise unknown_name("method", name, REGISTRY)
    return REGISTRY[name]


def build_method(
    name: str,
    backbone: Backbone,
    classnames: Sequence[str],
    template: str = "a photo of a {}.",
    config: dict | Any | None = None,
    ensemble_with_template: bool = True,
) -> PromptMethod:
    """Build a registered method on ``backbone`` for ``classnames`` (``template`` and
    ``ensemble_with_template`` as :meth:`PromptMethod.set_classnames` takes them)."""
    cls = get_method_class(name)
    method = cls(make_config(cls, config), backbone, classnames, template)
    if not ensemble_with_template:
        method.set_classnames(classnames, template, ensemble_with_template)
    return method.to(backbone.device)


def describe_methods(backbone: Backbone, n_cls: int = 100) -> list[dict]:
    """Rows of name, description and default trainable parameters on ``backbone`` for ``n_cls`` classes.

    Where a method's default config cannot be built on ``backbone``, ``trainable`` is ``n/a`` and
    ``note`` says why (one sentence); otherwise ``note`` is empty.
    """
    rows = []
    for name, cls in REGISTRY.items():
        try:
            count, note = f"{cls.count_parameters(cls.Config(), backbone, n_cls):,}", ""
        except UptError as exc:
            count, note = "n/a", str(exc)
        rows.append({"name": name, "description": cls.description, "trainable": count, "note": note})
    return rows
