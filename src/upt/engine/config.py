"""Run configuration: typed sections, presets as YAML, ``--set key=value`` overrides.

Precedence, lowest first: the dataclass defaults < the protocol's preset (``configs/protocols``)
< the method's own settings for that protocol (``configs/methods``: the paper's, with a
``protocols:`` section for each protocol whose reference config differs) < preset YAML files
(``--config``, in order) < command-line flags and ``--set`` overrides. Any preset may hold a
``protocols:`` section; the part for the run's protocol applies at that preset's level, and then a
``datasets:`` section (top-level or inside the protocol's) for the run's dataset: a reference code's
per-dataset settings; likewise a ``backbones:`` section for the run's backbone.
An override of ``0`` or ``""`` is a value, never "unset". :func:`fill_defaults` then writes every
remaining default out (the method's full config, epochs, precision, device, activation), which is
what ``--print-config`` shows and ``config.yaml`` holds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import yaml

from upt.engine.precision import PRECISIONS
from upt.engine.presets import (
    SECTIONS,
    for_protocol,
    load_yaml,
    merge,
    nested,
    packaged_preset,
    parse_override,
)
from upt.errors import UptError
from upt.fields import typed_fields

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
        if self.warmup_epochs < 0 or self.warmup_lr <= 0 or self.momentum < 0 or self.weight_decay < 0:
            raise UptError("warmup_epochs, momentum and weight_decay must be >= 0 and warmup_lr > 0 (got "
                           f"{self.warmup_epochs}, {self.momentum}, {self.weight_decay}, {self.warmup_lr}).")
        if self.max_steps is not None and self.max_steps <= 0:
            raise UptError(f"max_steps must be positive, got {self.max_steps}.")


@dataclass
class DataConfig:
    """Loading. ``train_transform``/``eval_transform``: names from ``upt.data.transforms``.
    Methods with a frozen image encoder (CoOp, CoCoOp, zero-shot, linear probe) train on cached
    image features when the training transform is deterministic (exact). ``feature_views`` > 0
    trains them on that many pre-computed augmented views per image instead of fresh augmentation
    each step: much faster, but a change of protocol, so off by default.
    ``cache_images`` keeps decoded few-shot images in memory at full resolution (random crops
    sample the original pixels, as the reference code's do); ``cache_short_side`` shrinks them to
    that short side first: faster decoding and less memory, but small-scale crops are then blurrier,
    so off (None) by default and recorded in the run when set."""

    train_transform: str = "random_resized_crop"
    eval_transform: str = "center_crop"
    eval_batch_size: int = 100
    num_workers: int = 2
    cache_images: bool = True
    cache_short_side: int | None = None
    feature_views: int = 0

    def __post_init__(self):
        if self.eval_batch_size <= 0 or self.num_workers < 0 or self.feature_views < 0:
            raise UptError(f"eval_batch_size must be positive and num_workers, feature_views >= 0 (got "
                           f"{self.eval_batch_size}, {self.num_workers}, {self.feature_views}).")
        if self.cache_short_side is not None and self.cache_short_side <= 0:
            raise UptError(f"cache_short_side must be positive, got {self.cache_short_side}.")


@dataclass
class ComputeConfig:
    """Same numbers, different cost. ``text_chunk_size``: class prompts encoded at a time;
    ``grad_checkpointing``: recompute activations in backward; ``truncate_text``: cut prompts
    after the last [EOS] (False: all 77 tokens, as the reference code runs); ``share_prefix``: run
    the "[SOS] context" tokens shared by every class prompt once. Each is exact (tested); the
    switches exist so a doubted number can be recomputed the reference's way without code.
    ``feature_store``: where frozen-encoder image features are kept and reused (:mod:`upt.engine.features`;
    exact, tested): ``auto`` (a sweep's own store under its root, else the user cache), a folder, or ``off``."""

    text_chunk_size: int | None = None
    grad_checkpointing: bool = False
    truncate_text: bool = True
    share_prefix: bool = True
    feature_store: str = "auto"

    def __post_init__(self):
        if self.text_chunk_size is not None and self.text_chunk_size <= 0:
            raise UptError(f"text_chunk_size must be positive, got {self.text_chunk_size}.")
        if str(self.feature_store).strip().lower() in ("off", "false", "no", "none", ""):
            self.feature_store = "off"  # `--set compute.feature_store=off` reaches here as YAML's false

    def method_settings(self) -> dict:
        """What :meth:`upt.methods.base.PromptMethod.configure_compute` takes (the engine keeps the store)."""
        return {k: v for k, v in asdict(self).items() if k != "feature_store"}


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
    quick_gelu: bool | None = None  # None: the activation the weights were trained with (open_clip's tag config)
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
        if not 0 <= self.seed < 2**31:
            raise UptError(f"seed must be between 0 and {2**31 - 1}, got {self.seed}.")
        # Names and method options are checked now, before any data is read or model built.
        from upt.backbone import check_backbone_name
        from upt.data import get_spec
        from upt.methods import get_method_class, make_config

        make_config(get_method_class(self.method), self.method_config)
        if not self.dataset.startswith("folder:"):
            get_spec(self.dataset)
        check_backbone_name(self.backbone)
        from upt.backbone.configs import method_support

        why = method_support(self.backbone).get(self.method)
        if why:
            raise UptError(why)

    def epochs(self) -> int:
        """Epochs of this run: explicit, or the CoOp schedule by shots."""
        if self.optim.epochs is not None:
            return self.optim.epochs
        if self.dataset == "imagenet":
            return 50
        return {1: 50, 2: 100, 4: 100}.get(self.shots, 200)

    def to_dict(self) -> dict:
        """Plain data (tuples as lists), as YAML and JSON hold it."""
        import json

        return json.loads(json.dumps(asdict(self)))


# Short names of the most used settings (the ``upt train`` flags; ``upt.run_config`` keywords) -> config key.
SHORT_KEYS = {
    "method": "method", "dataset": "dataset", "data_root": "data_root", "shots": "shots", "seed": "seed",
    "backbone": "backbone", "pretrained": "pretrained", "classes": "classes", "protocol": "protocol",
    "device": "device", "precision": "precision", "epochs": "optim.epochs", "batch_size": "optim.batch_size",
    "lr": "optim.lr", "max_steps": "optim.max_steps", "workers": "data.num_workers", "devices": "devices",
}


def settings_layer(settings: dict[str, Any]) -> dict:
    """A config layer from short names (:data:`SHORT_KEYS`) and top-level keys (sections as mappings);
    None values are unset. An unknown name is an error listing the known ones."""
    known = {f.name for f in dataclasses.fields(RunConfig)}
    layer: dict = {}
    for key, value in settings.items():
        if value is None:
            continue
        if key not in SHORT_KEYS and key not in known:
            raise UptError(f"Unknown setting '{key}'; known: {sorted(set(SHORT_KEYS) | known)} "
                           "(or pass overrides=['section.key=value']).")
        layer = merge(layer, nested(SHORT_KEYS.get(key, key), value))
    return layer


def default_out(cfg: RunConfig) -> str:
    """The run folder a run goes to when none is named: ``runs/<dataset>[-<classes>]-<method>-<K>shot-seed<S>``."""
    name = cfg.dataset.replace("folder:", "").rstrip("/").split("/")[-1]
    suffix = "" if cfg.classes == "all" else f"-{cfg.classes}"
    return f"runs/{name}{suffix}-{cfg.method}-{cfg.shots}shot-seed{cfg.seed}"


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
        values[name] = cls(**typed_fields(cls, section, f"{name}."))
    return RunConfig(**typed_fields(RunConfig, values))


def resolve(base: dict, presets: list[str] = (), overrides: list[str] = ()) -> RunConfig:
    """Resolve the run config: defaults < protocol preset < the method's settings for the protocol (and
    the dataset and backbone) < ``presets`` < ``base`` flags < overrides."""
    layers = [load_yaml(p) for p in presets] + [base] + [parse_override(item) for item in overrides]
    top: dict = {}
    for layer in layers:
        top = merge(top, {k: v for k, v in layer.items() if k not in SECTIONS})
    # Training on the base classes is the base-to-new protocol unless another is named.
    protocol = top.get("protocol") or ("base2new" if top.get("classes") == "base" else RunConfig.protocol)
    method = top.get("method", RunConfig.method)
    protocol_preset = packaged_preset(f"protocols/{protocol}")
    dataset = top.get("dataset") or protocol_preset.get("dataset") or RunConfig.dataset
    backbone = top.get("backbone") or protocol_preset.get("backbone") or RunConfig.backbone
    merged: dict = {"protocol": protocol}
    for layer in [protocol_preset, packaged_preset(f"methods/{method}"), *layers]:
        merged = merge(merged, for_protocol(layer, protocol, dataset, backbone))
    from upt.backbone.configs import BUILTIN_CONFIGS, builtin_default_weights

    backbone = merged.get("backbone", backbone)
    if "pretrained" not in merged and backbone in BUILTIN_CONFIGS:  # its packaged weights (or random)
        merged["pretrained"] = builtin_default_weights(backbone)
    return from_dict(merged)


def fill_defaults(cfg: RunConfig) -> RunConfig:
    """Every default written out: the method's full config, epochs, precision and device, the
    backbone's activation, a ``folder:`` dataset's absolute path. Idempotent; what ``--print-config`` prints and ``config.yaml`` holds."""
    from upt.backbone import default_quick_gelu
    from upt.data import canonical_dataset
    from upt.engine.precision import resolve_precision
    from upt.engine.rundir import resolve_device
    from upt.methods import get_method_class, make_config

    values = cfg.to_dict()
    values["dataset"] = canonical_dataset(cfg.dataset)  # folder:rel/path -> absolute: evaluable from anywhere
    values["method_config"] = asdict(make_config(get_method_class(cfg.method), cfg.method_config))
    values["optim"]["epochs"] = cfg.epochs()
    if not get_method_class(cfg.method).needs_training_data:
        values["shots"] = 0  # zero-shot: no labelled image is used, whatever --shots said
    device = resolve_device(cfg.device)
    if cfg.device == "auto":
        values["device"] = device.type
    values["precision"] = resolve_precision(cfg.precision, device).name
    if cfg.quick_gelu is None:
        values["quick_gelu"] = default_quick_gelu(cfg.backbone, cfg.pretrained)
    return from_dict(values)


def config_text(cfg: RunConfig) -> str:
    """The YAML text of a config (``config.yaml``, ``--print-config``)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
