"""Run configuration: typed sections, presets as YAML, ``--set key=value`` overrides.

Precedence, lowest first: the dataclass defaults < the method's own protocol (``configs/methods``)
< preset YAML files (``--config``, in order) < command-line flags and ``--set`` overrides.
An override of ``0`` or ``""`` is a value, never "unset".
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from upt.engine.precision import PRECISIONS
from upt.errors import UptError

CLASS_CHOICES = ("all", "base", "new")


@dataclass
class OptimConfig:
    """Optimisation (CoOp protocol defaults). ``epochs`` None: by shots (1→50, 2/4→100, 8/16→200,
    ImageNet 50). ``max_steps`` stops early (smoke runs). ``warmup_epochs`` at constant ``warmup_lr``."""

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    epochs: int | None = None
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    max_steps: int | None = None

    def __post_init__(self):
        if self.name not in ("sgd", "adamw"):
            raise UptError(f"Unknown optimizer '{self.name}'; choose sgd or adamw.")
        if self.lr <= 0 or self.batch_size <= 0:
            raise UptError(f"lr and batch_size must be positive (got lr={self.lr}, batch_size={self.batch_size}).")
        if self.epochs is not None and self.epochs <= 0:
            raise UptError(f"epochs must be positive, got {self.epochs}.")


@dataclass
class DataConfig:
    """Loading. ``train_transform``/``eval_transform``: names from ``upt.data.transforms``.
    Methods with a frozen image encoder (CoOp, CoCoOp, zero-shot, linear probe) train on cached
    image features when the training transform is deterministic (exact). ``feature_views`` > 0
    trains them on that many pre-computed augmented views per image instead of fresh augmentation
    each step: much faster, but a change of protocol, so off by default."""

    train_transform: str = "random_resized_crop"
    eval_transform: str = "center_crop"
    eval_batch_size: int = 100
    num_workers: int = 2
    cache_images: bool = True
    feature_views: int = 0


@dataclass
class ComputeConfig:
    """Same numbers, different cost: text chunking and activation checkpointing."""

    text_chunk_size: int | None = None
    grad_checkpointing: bool = False


@dataclass
class RunConfig:
    """Everything one training run depends on; saved as ``config.yaml`` in the run folder."""

    method: str = "upt"
    dataset: str = "shapes"
    data_root: str | None = None
    shots: int = 16
    seed: int = 1
    backbone: str = "ViT-B-16"
    pretrained: str | None = "openai"
    classes: Literal["all", "base", "new"] = "all"
    protocol: str = "fewshot"
    precision: str = "auto"
    device: str = "auto"
    devices: int = 1
    deterministic: bool = False
    method_config: dict = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)

    def __post_init__(self):
        if self.classes not in CLASS_CHOICES:
            raise UptError(f"Unknown classes '{self.classes}'; choose all, base or new.")
        if self.precision not in PRECISIONS:
            raise UptError(f"Unknown precision '{self.precision}'; choose one of {', '.join(PRECISIONS)}.")
        if self.devices < 1:
            raise UptError(f"devices must be at least 1, got {self.devices}.")
        if self.shots < 0:
            raise UptError(f"shots must be >= 0 (0 uses the whole training split), got {self.shots}.")
        # Names and method options are checked now, before any data is read or model built.
        from upt.backbone import check_backbone_name
        from upt.data import get_spec
        from upt.methods import get_method_class, make_config

        make_config(get_method_class(self.method), self.method_config)
        if not self.dataset.startswith("folder:"):
            get_spec(self.dataset)
        check_backbone_name(self.backbone)

    def epochs(self) -> int:
        """Epochs of this run: explicit, or the CoOp schedule by shots."""
        if self.optim.epochs is not None:
            return self.optim.epochs
        if self.dataset == "imagenet":
            return 50
        return {1: 50, 2: 100, 4: 100}.get(self.shots, 200)

    def to_dict(self) -> dict:
        return asdict(self)


def _sections() -> dict[str, type]:
    return {f.name: f.default_factory for f in dataclasses.fields(RunConfig)
            if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)}


def from_dict(values: dict) -> RunConfig:
    """Build a RunConfig from a nested dict, with one clear error per unknown key."""
    values = dict(values)
    known = {f.name for f in dataclasses.fields(RunConfig)}
    bad = sorted(set(values) - known)
    if bad:
        raise UptError(f"Unknown config key(s) {bad}; known: {sorted(known)}.")
    for name, cls in _sections().items():
        section = values.get(name) or {}
        if not isinstance(section, dict):
            raise UptError(f"Config section '{name}' must be a mapping, got {section!r}.")
        fields = {f.name for f in dataclasses.fields(cls)}
        wrong = sorted(set(section) - fields)
        if wrong:
            raise UptError(f"Unknown key(s) {wrong} in section '{name}'; known: {sorted(fields)}.")
        values[name] = cls(**section)
    return RunConfig(**values)


def merge(base: dict, update: dict) -> dict:
    """Deep-merge ``update`` into a copy of ``base``."""
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(item: str) -> dict:
    """``optim.lr=0.01`` -> ``{"optim": {"lr": 0.01}}``; values are parsed as YAML scalars."""
    if "=" not in item:
        raise UptError(f"Override '{item}' must look like key=value, e.g. optim.lr=0.01.")
    key, raw = item.split("=", 1)
    return nested(key.strip(), yaml.safe_load(raw) if raw != "" else "")


def nested(dotted: str, value: Any) -> dict:
    """``nested("optim.lr", 0.01)`` -> ``{"optim": {"lr": 0.01}}``."""
    for part in reversed(dotted.split(".")):
        value = {part: value}
    return value


def load_yaml(path: str | Path, what: str = "Config file",
              hint: str = "nor a packaged preset of that name") -> dict:
    """A YAML mapping from a file, or from a packaged one by name (``protocols/base2new``, ``grids/fewshot``)."""
    p = Path(path)
    if p.is_file():
        text = p.read_text()
    else:
        packaged = resources.files("upt") / "configs" / f"{path}.yaml"
        if not packaged.is_file():
            raise UptError(f"{what} '{path}' not found ({hint}).")
        text = packaged.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UptError(f"{what} '{path}' is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise UptError(f"{what} '{path}' must hold a mapping of keys to values.")
    return data


def method_defaults(method: str) -> dict:
    """The method's own protocol preset (e.g. CoCoOp: batch 1, 10 epochs), or nothing."""
    packaged = resources.files("upt") / "configs" / "methods" / f"{method}.yaml"
    return yaml.safe_load(packaged.read_text()) or {} if packaged.is_file() else {}


def resolve(base: dict, presets: list[str] = (), overrides: list[str] = ()) -> RunConfig:
    """Resolve the run config: defaults < method preset < ``presets`` < ``base`` flags < overrides."""
    merged: dict = {}
    for preset in presets:
        merged = merge(merged, load_yaml(preset))
    merged = merge(merged, base)
    for item in overrides:
        merged = merge(merged, parse_override(item))
    method = merged.get("method", RunConfig.method)
    merged = merge(method_defaults(method), merged)
    return from_dict(merged)
