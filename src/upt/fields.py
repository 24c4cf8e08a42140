"""Typed config fields: every value checked (and, where unambiguous, converted) against its
dataclass field's annotation before a config object is built.

``--set optim.lr=1e-3`` reaches the config as the string ``"1e-3"`` (YAML 1.1 wants a dot in a
float); ``optim.epochs=2.5`` as a float. Both must become a clear sentence or the right type, never
a traceback from deep inside a run. Non-finite numbers are refused by name.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from upt.errors import UptError

_NONE_WORDS = ("none", "null", "~", "")
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def typed_fields(cls: type, values: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``values`` with each known field converted to ``cls``'s annotation (unknown keys pass through).

    Args:
        cls: a dataclass.
        values: field name -> raw value (from YAML or ``--set``).
        where: prefix of the field names in messages (``"optim."``).

    Raises:
        UptError: a value that does not fit its field, naming the field and the value.
    """
    hints = typing.get_type_hints(cls)
    return {k: coerce(v, hints[k], f"{where}{k}") if k in hints else v for k, v in values.items()}


def coerce(value: Any, hint: Any, name: str) -> Any:
    """Convert ``value`` to the type ``hint`` describes, or raise a sentence naming ``name``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
            if type(None) in args:
                return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce(value, option, name)
            except UptError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        return value  # each config's own check names the choices
    if origin is tuple or hint is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        inner = args[0] if args else Any
        return tuple(coerce(v, inner, f"{name}[{i}]") for i, v in enumerate(items))
    if origin is list:
        if not isinstance(value, list | tuple):
            raise UptError(f"{name} must be a list; got {value!r}.")
        return [coerce(v, args[0] if args else Any, f"{name}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        return _bool(value, name)
    if hint is int:
        return _int(value, name)
    if hint is float:
        return _float(value, name)
    if hint is str:
        if isinstance(value, dict | list | tuple) or value is None:
            raise UptError(f"{name} must be a text value; got {value!r}.")
        return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise UptError(f"{name} must be a mapping of keys to values; got {value!r}.")
    return value


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    raise UptError(f"{name} must be true or false; got {value!r}.")


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UptError(f"{name} must be a number; got {value!r}.")
    try:
        number = float(value)
    except ValueError:
        raise UptError(f"{name} must be a number; got {value!r}.") from None
    if not math.isfinite(number):
        raise UptError(f"{name} must be a finite number; got {value!r}.")
    return number


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise UptError(f"{name} must be a whole number; got {value!r}.")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    number = _float(value, name) if not isinstance(value, str) else None
    if number is not None and number.is_integer():
        return int(number)
    raise UptError(f"{name} must be a whole number; got {value!r}.")
