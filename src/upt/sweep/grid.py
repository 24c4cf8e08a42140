"""A sweep grid (methods x datasets x shots x seeds under one protocol) and the jobs it expands to.

A grid is a small YAML file or the equivalent flags of ``upt sweep``::

    protocol: fewshot                 # fewshot | base2new | dg | cross-dataset
    methods: [coop, upt]
    datasets: [dtd, eurosat]          # default: the protocol's (11 datasets; imagenet for dg/cross)
    shots: [1, 2, 4, 8, 16]           # default: the protocol's
    seeds: [1, 2, 3]
    backbone: ViT-B-16
    pretrained: openai
    data_root: /data
    config: [my-preset.yaml]          # run presets, after the protocol's own
    set: ["optim.max_steps=100"]      # overrides for every run
    method_set: {vpt: ["method_config.mode=deep"]}
    out: runs/fewshot                 # output root (or --out)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from upt.errors import UptError
from upt.sweep.protocols import get_protocol

_RENAMED = {"set": "overrides"}  # YAML key -> field name
_RUN_KEYS = ("backbone", "pretrained", "data_root", "device", "precision", "epochs", "max_steps")  # as upt train's


@dataclass
class Grid:
    """Everything one sweep runs; see the module docstring for the YAML form."""

    methods: list[str]
    protocol: str = "fewshot"
    datasets: list[str] | None = None
    targets: list[str] | None = None
    shots: list[int] | None = None
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    backbone: str | None = None
    pretrained: str | None = None
    data_root: str | None = None
    device: str | None = None
    precision: str | None = None
    epochs: int | None = None
    max_steps: int | None = None
    config: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    method_set: dict[str, list[str]] = field(default_factory=dict)
    out: str | None = None

    def __post_init__(self):
        proto = get_protocol(self.protocol)
        self.datasets = _names(self.datasets, "datasets") or list(proto.datasets)
        self.targets = _names(self.targets, "targets")
        self.shots = self.shots if self.shots is not None else list(proto.shots)
        self.methods = _names(self.methods, "methods")
        if not self.methods:
            raise UptError("A sweep grid needs at least one method (methods: [coop, upt] or --methods coop,upt).")
        for key in ("shots", "seeds"):
            values = getattr(self, key)
            if not isinstance(values, list) or not values or not all(isinstance(v, int) and v >= 0 for v in values):
                raise UptError(f"Grid '{key}' must be a non-empty list of integers >= 0, got {values!r}.")
        unknown = sorted(set(self.method_set) - set(self.methods))
        if unknown:
            raise UptError(f"method_set names method(s) {unknown} that are not in the grid's methods {self.methods}.")
        if not self.protocol_spec.transfer and self.targets:
            raise UptError(f"Protocol '{self.protocol}' evaluates on the training dataset only; remove 'targets'.")

    @property
    def protocol_spec(self):
        return get_protocol(self.protocol)


def _names(values, key: str) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [v for v in values.split(",") if v]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise UptError(f"Grid '{key}' must be a list of names, got {values!r}.")
    return list(dict.fromkeys(values))  # drop repeats, keep order


def grid_from_dict(values: dict) -> Grid:
    """Build a :class:`Grid` from a YAML mapping, with one clear error per unknown key."""
    values = {_RENAMED.get(k, k): v for k, v in values.items()}
    known = {f.name for f in dataclasses.fields(Grid)}
    bad = sorted(set(values) - known)
    if bad:
        shown = sorted({k if k not in _RENAMED.values() else "set" for k in known})
        raise UptError(f"Unknown grid key(s) {bad}; known: {shown}.")
    if "methods" not in values:
        raise UptError("A sweep grid needs 'methods', e.g. methods: [coop, upt].")
    for key in ("config", "overrides"):
        if isinstance(values.get(key), str):
            values[key] = [values[key]]
    return Grid(**values)


def load_grid(path: str | Path | None, updates: dict | None = None) -> Grid:
    """Read a grid YAML (or start from nothing) and apply ``updates`` (flags) on top."""
    from upt.engine.presets import load_yaml

    values: dict = {}
    if path is not None:
        values = load_yaml(path, "Grid file", "packaged example grids: grids/fewshot, grids/base2new, grids/dg, "
                                              "grids/cross-dataset, grids/smoke")
    for key, value in (updates or {}).items():
        if value is None:
            continue
        if key in ("config", "set"):  # list flags add to the file's lists
            values[key] = list(values.get(key) or []) + list(value)
        else:
            values[key] = value
    return grid_from_dict(values)


def run_settings(grid: Grid) -> dict:
    """The grid-wide run settings that are set, as a run-config layer (the names ``upt train`` takes)."""
    from upt.engine.config import settings_layer

    return settings_layer({key: getattr(grid, key) for key in _RUN_KEYS})
