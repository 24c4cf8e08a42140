"""Config layers: YAML presets (a file, or a packaged one by name), ``key=value`` overrides, a preset's
``protocols:``, ``datasets:`` and ``backbones:`` sections, and the deep merge that stacks them
(:func:`upt.engine.config.resolve`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from upt.errors import UptError


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


def packaged_preset(name: str) -> dict:
    """A packaged preset by name (``methods/cocoop``, ``protocols/dg``), or nothing when none exists."""
    packaged = resources.files("upt") / "configs" / f"{name}.yaml"
    return yaml.safe_load(packaged.read_text()) or {} if packaged.is_file() else {}


def _section(layer: dict, key: str, name: str) -> dict:
    """``layer`` without its ``key`` section (``protocols``, ``datasets``, ``backbones``), merged with that section's part
    for ``name``."""
    layer = dict(layer)
    sections = layer.pop(key, None) or {}
    if not isinstance(sections, dict):
        raise UptError(f"A preset's '{key}' must map names to settings, got {sections!r}.")
    section = sections.get(name) or {}
    if not isinstance(section, dict):
        raise UptError(f"The '{name}' section of a preset's '{key}' must be a mapping.")
    return merge(layer, section)


SECTIONS = ("protocols", "datasets", "backbones")  # a preset's parts that apply to one run only


def for_protocol(layer: dict, protocol: str, dataset: str | None = None, backbone: str | None = None) -> dict:
    """A preset with its ``protocols:`` section folded in for ``protocol``, then its ``datasets:`` section
    for ``dataset`` and its ``backbones:`` section for ``backbone`` (each top-level or inside the protocol's),
    and the sections removed. A dataset section holds a reference code's per-dataset settings (Tip-Adapter's
    search ranges, say); a backbone section what a backbone needs (prompt depths within its layers)."""
    layer = _section(_section(layer, "protocols", protocol), "datasets", dataset or "")
    return _section(layer, "backbones", backbone or "")
