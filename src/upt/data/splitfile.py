"""CoOp split files: ``{"train"|"val"|"test": [[relative_path, label, classname], ...]}``.

Parsing is strict (a malformed file is named with the first bad entry) and the existence check lists
each folder once instead of calling ``stat`` per image, so Food-101's 100k paths check in a blink.
"""

from __future__ import annotations

import json
import os
import reprlib
from collections.abc import Iterable, Mapping

from upt.data.base import SPLITS, Sample, clean_classname
from upt.data.walk import entry_path
from upt.errors import UptError

Entry = tuple[str, int, str]


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 3, 120, 120, 4, 4
TOO_DEEP = "nested too deeply to be a list of images"


def show(value: object) -> str:
    """A short ``repr`` for error messages: bounded in length and depth, whatever the file held."""
    return _REPR.repr(value)


def load_json(path: str) -> object:
    """Decode a JSON file.

    Raises:
        ValueError: Not JSON, not UTF-8, or nested too deeply (``TOO_DEEP``); the message says which.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except RecursionError:  # json recurses once per nesting level: [[[[...]]]] would end in a traceback
        raise ValueError(TOO_DEEP) from None


def _malformed(path: str, detail: str) -> UptError:
    return UptError(f"Split file {path} is malformed ({detail}); replace it with a fresh copy.")


def _label(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def parse_split_entries(data: object, path: str) -> dict[str, list[Entry]]:
    """Validate already-decoded split data; ``path`` names the file in errors."""
    if not isinstance(data, dict) or not all(isinstance(data.get(s), list) for s in SPLITS):
        raise _malformed(path, "expected an object with 'train', 'val' and 'test' lists")
    out: dict[str, list[Entry]] = {}
    for split in SPLITS:
        entries = []
        for i, item in enumerate(data[split]):
            ok = isinstance(item, (list, tuple)) and len(item) == 3 and isinstance(item[0], str)
            label = _label(item[1]) if ok else None
            if label is None or label < 0 or not isinstance(item[2], str):
                raise _malformed(path, f"{split} entry {i} is {show(item)}, expected [relative_path, label, classname]")
            entries.append((item[0], label, item[2]))
        out[split] = entries
    return out


def read_split_file(path: str) -> dict[str, list[Entry]]:
    """Read and validate a CoOp split JSON file."""
    try:
        data = load_json(path)
    except ValueError as exc:
        raise _malformed(path, str(exc)) from None
    return parse_split_entries(data, path)


def classnames_from_entries(
    entries: Mapping[str, list[Entry]], path: str, renames: Mapping[str, str] | None = None
) -> list[str]:
    """Class names in label order from the (label, classname) pairs of all splits.

    Raises:
        UptError: A label named two ways, or labels that skip a number.
    """
    names: dict[int, str] = {}
    for split in SPLITS:
        for _, label, name in entries[split]:
            seen = names.setdefault(label, name)
            if seen != name:
                raise _malformed(path, f"label {label} is named both '{seen}' and '{name}'")
    if not names:
        raise _malformed(path, "all three lists are empty")
    gaps = sorted(set(range(max(names) + 1)) - set(names))
    if gaps:
        raise _malformed(path, f"no entry has label {gaps[0]}, so labels are not 0..{max(names)}")
    return [clean_classname(names[i], renames) for i in range(len(names))]


def to_samples(entries: Iterable[Entry], image_dir: str, source: str) -> list[Sample]:
    """Turn split entries into samples with absolute paths under ``image_dir``.

    Raises:
        UptError: An entry is absolute or leaves ``image_dir`` (``source`` names the split file).
    """
    where = f"Split file {source}"
    return [Sample(entry_path(image_dir, p, where), label) for p, label, _ in entries]


def find_missing(paths: Iterable[str]) -> list[str]:
    """The paths that do not exist, listing each parent folder once."""
    listing: dict[str, set[str]] = {}
    missing = []
    for p in paths:
        parent, name = os.path.split(p)
        if parent not in listing:
            try:
                listing[parent] = set(os.listdir(parent))
            except OSError:
                listing[parent] = set()
        if name not in listing[parent]:
            missing.append(p)
    return missing


def raise_if_missing(samples: Iterable[Sample], source: str, image_dir: str, dataset: str) -> None:
    """Raise one error naming the first few missing images of a split file, with the count."""
    unique = dict.fromkeys(s.path for s in samples)
    missing = find_missing(unique)
    if missing:
        shown = ", ".join(os.path.relpath(p, image_dir) for p in missing[:3])
        raise UptError(
            f"{source} lists {len(missing)} image(s) missing under {image_dir} (e.g. {shown}); the "
            f"images are incomplete or laid out differently: run `upt data check --dataset {dataset}` "
            "for the full list."
        )


def entries_of(samples_by_split: Mapping[str, list[Sample]], classnames: list[str], image_dir: str) -> dict:
    """The inverse of :func:`to_samples`: split data in CoOp's JSON format, paths relative to ``image_dir``."""
    return {
        split: [[os.path.relpath(s.path, image_dir).replace(os.sep, "/"), s.label, classnames[s.label]]
                for s in samples_by_split[split]]
        for split in SPLITS
    }
