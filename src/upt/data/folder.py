"""Own data: ``folder:PATH`` where PATH is a class-per-folder tree, a ``train/ val/ test/`` tree, or a list file.

Any split the data does not define is carved from train by :func:`upt.data.base.carve` (50/20/30
per class when there is no split at all, 20 % of train for a missing val, 30 % for a missing test),
a pure function of the file names, and recorded in ``info``.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence

from upt.data.base import (
    DEFAULT_TEMPLATE,
    SPLITS,
    DatasetSplits,
    Sample,
    carve,
    clean_classname,
)
from upt.data.splitfile import load_json, parse_split_entries, raise_if_missing, show
from upt.data.walk import claim_folders, entry_path, list_images, list_subdirs
from upt.errors import UptError

logger = logging.getLogger(__name__)

P_VAL, P_TEST = 0.2, 0.3
_WHAT = "hold one sub-folder per class, train/ and test/ (optionally val/) sub-folders of class folders, or be a .csv/.json list"


def split_class_folders(
    image_dir: str,
    p_val: float = P_VAL,
    p_test: float = P_TEST,
    ignored: Sequence[str] = (),
    renames: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, list[Sample]]]:
    """Read a class-per-folder tree and split every class by file name (CoOp's fallback, made pure).

    Returns:
        Class names (sorted folder order, cleaned) and samples per split.
    """
    seen: set[str] = set()  # real paths of the folders listed: links never list one twice
    classes = [c for c in list_subdirs(image_dir, seen=seen) if c not in ignored]
    if not classes:
        raise UptError(f"Folder {image_dir} holds no class sub-folders; it should hold one folder of images per class.")
    out: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for label, c in enumerate(classes):
        folder = os.path.join(image_dir, c)
        names = list_images(folder, image_dir, seen)
        if not names:
            raise UptError(f"Class folder {folder} holds no images; add images or remove the folder.")
        for split, part in zip(SPLITS, carve(names, p_val, p_test, f"Class folder {folder}"), strict=True):
            out[split] += [Sample(os.path.join(folder, n), label) for n in part]
    return [clean_classname(c, renames) for c in classes], out


def _split_tree(path: str) -> tuple[list[str], dict[str, list[Sample]], list[str]]:
    seen: set[str] = set()  # shared by all splits: a linked test/ or test/<class> never repeats train
    present = [os.path.basename(p) for p in claim_folders(
        [os.path.join(path, s) for s in SPLITS if os.path.isdir(os.path.join(path, s))], path, seen)]
    class_dirs = {s: list_subdirs(os.path.join(path, s), path, seen) for s in present}
    classes = sorted({c for s in present for c in class_dirs[s]})
    if not classes:
        raise UptError(f"Folder {path} has split folders but no class folders inside them.")
    label = {c: i for i, c in enumerate(classes)}
    files: dict[str, dict[int, list[str]]] = {s: {} for s in SPLITS}
    for s in present:
        for c in class_dirs[s]:
            folder = os.path.join(path, s, c)
            names = list_images(folder, path, seen)
            if not names:
                raise UptError(f"Class folder {folder} holds no images; add images or remove the folder.")
            files[s][label[c]] = [os.path.join(folder, n) for n in names]
    carved = _carve_missing(files, [s for s in SPLITS if s not in present], {i: f"Class '{c}' in {path}/train"
                                                                            for c, i in label.items()})
    out = {s: [Sample(p, y) for y in sorted(files[s]) for p in files[s][y]] for s in SPLITS}
    return [clean_classname(c) for c in classes], out, carved


def _carve_missing(files: dict[str, dict[int, list[str]]], missing: list[str], where: dict[int, str]) -> list[str]:
    """Fill the missing val/test of ``files`` from its train lists, in place; return what was carved."""
    if "train" in missing:
        raise UptError("Own data needs a train split: add a train/ folder or 'train' rows.")
    p_val = P_VAL if "val" in missing else 0.0
    p_test = P_TEST if "test" in missing else 0.0
    if not missing:
        return []
    for y, paths in list(files["train"].items()):
        base = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
        rel = {os.path.relpath(p, base): p for p in paths}
        train, val, test = carve(sorted(rel), p_val, p_test, where[y])
        files["train"][y] = [rel[n] for n in train]
        for s, part in (("val", val), ("test", test)):
            if s in missing:
                files[s][y] = [rel[n] for n in part]
    return missing


def _rows_from_csv(path: str) -> list[tuple[str | None, ...]]:
    """(path, label, split, classname) rows of a .csv list with a header row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = {c.strip().lower(): c for c in reader.fieldnames or []}
            if "path" not in cols or "label" not in cols:
                raise UptError(f"List file {path} needs a header row with 'path' and 'label' columns (optional 'split', 'classname').")

            def get(row: dict, key: str) -> str | None:
                return (row.get(cols[key]) or "").strip() or None if key in cols else None

            return [(get(r, "path"), get(r, "label"), get(r, "split"), get(r, "classname")) for r in reader]
    except (csv.Error, UnicodeDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise UptError(f"List file {path} cannot be read ({reason}); it must be a CSV list of images and labels.") from None


def _rows_from_list(path: str) -> list[tuple[str, object, str | None, str | None]]:
    """(path, label, split, classname) rows from a .csv or .json list; JSON in CoOp's split format too."""
    if path.lower().endswith(".csv"):
        return _rows_from_csv(path)
    try:
        data = load_json(path)
    except ValueError as exc:
        raise UptError(f"List file {path} cannot be read ({exc}); it must be a JSON list of images and labels.") from None
    if isinstance(data, dict):
        entries = parse_split_entries(data, path)
        return [(p, y, s, n) for s in SPLITS for p, y, n in entries[s]]
    if not isinstance(data, list):
        raise UptError(f"List file {path} must hold a list of {{'path', 'label'}} objects or [path, label] pairs.")
    rows = []
    for i, item in enumerate(data):
        if isinstance(item, dict) and "path" in item and "label" in item:
            rows.append((item["path"], item["label"], item.get("split"), item.get("classname")))
        elif isinstance(item, (list, tuple)) and len(item) in (2, 3):
            rows.append((item[0], item[1], item[2] if len(item) == 3 else None, None))
        else:
            raise UptError(f"List file {path}: entry {i} is {show(item)}, expected {{'path', 'label'}} or [path, label].")
    return rows


def _read_list(path: str, check_files: bool) -> tuple[list[str], dict[str, list[Sample]], list[str]]:
    rows = _rows_from_list(path)
    if not rows:
        raise UptError(f"List file {path} lists no images.")
    base = os.path.dirname(path)
    bad = next((r for r in rows if not isinstance(r[0], str) or r[1] is None or r[1] == ""), None)
    if bad:
        raise UptError(f"List file {path} has a row without a path or label: {show(bad[:2])}.")
    odd = next((r for r in rows if isinstance(r[1], bool) or not isinstance(r[1], (int, str))
                or not all(v is None or isinstance(v, str) for v in r[2:])), None)
    if odd:
        raise UptError(f"List file {path} has a row {show(odd)} whose label is not a number or name, or whose "
                       "split or classname is not text.")
    is_int = all(isinstance(r[1], int) or (isinstance(r[1], str) and r[1].isdigit()) for r in rows)
    keys = sorted({int(r[1]) for r in rows}) if is_int else sorted({str(r[1]) for r in rows})
    label = {k: i for i, k in enumerate(keys)}
    named = {int(r[1]): r[3] for r in rows if r[3]} if is_int else {}
    if is_int and len(named) < len(keys):
        logger.warning("List file %s gives integer labels without a 'classname' for each; "
                       "prompts will use the numbers as class names.", path)
    classnames = [clean_classname(named.get(k, str(k)) if is_int else k) for k in keys]
    splits = {r[2] for r in rows}
    if None in splits and len(splits) > 1:
        raise UptError(f"List file {path} gives a split for some rows but not for others; give it for all or none.")
    if splits != {None} and not splits <= set(SPLITS):
        raise UptError(f"List file {path} has split values {sorted(map(str, splits - set(SPLITS)))}; use train, val or test.")
    files: dict[str, dict[int, list[str]]] = {s: {} for s in SPLITS}
    for p, y, s, _ in rows:
        full = entry_path(base, p, f"List file {path}", allow_absolute=True)
        files[s or "train"].setdefault(label[int(y) if is_int else str(y)], []).append(full)
    if check_files:
        raise_if_missing([Sample(p, 0) for d in files.values() for ps in d.values() for p in ps], path, base, f"folder:{path}")
    missing = ["val", "test"] if splits == {None} else [s for s in SPLITS if not files[s]]
    carved = _carve_missing(files, missing, {label[k]: f"Class '{classnames[i]}' in {path}" for i, k in enumerate(keys)})
    out = {s: [Sample(p, y) for y in sorted(files[s]) for p in sorted(files[s][y])] for s in SPLITS}
    return classnames, out, carved


def own_path(spec: str) -> str:
    """The absolute path of own data ``folder:PATH`` (``spec`` is PATH; ``~`` expanded)."""
    return os.path.abspath(os.path.expanduser(spec))


def read_own(spec: str, check_files: bool = True) -> DatasetSplits:
    """Read ``folder:PATH`` own data (``spec`` is PATH).

    Args:
        spec: A folder (class folders, or train/val/test folders of class folders) or a .csv/.json
            list of (path, label[, split][, classname]) with paths relative to the list's folder.
        check_files: Raise when a list file names images that do not exist.

    Returns:
        The splits, named ``folder:<absolute path>``, with template "a photo of a {}." and how they
        were made in ``info``.
    """
    path = own_path(spec)
    if os.path.isfile(path):
        if not path.lower().endswith((".csv", ".json")):
            raise UptError(f"Own data file {path} must be a .csv or .json list of images and labels.")
        classnames, samples, carved = _read_list(path, check_files)
        source = os.path.basename(path)
    elif os.path.isdir(path):
        if os.path.isdir(os.path.join(path, "train")):
            classnames, samples, carved = _split_tree(path)
            source = "train/ val/ test/ folders"
        else:
            classnames, samples = split_class_folders(path)
            carved, source = ["val", "test"], "class folders (all images count as train before carving)"
    else:
        raise UptError(f"Own data {path} not found: it should {_WHAT}.")
    parts = [f"{s} ({p:.0%})" for s, p in (("val", P_VAL), ("test", P_TEST)) if s in carved]
    rule = f"{' and '.join(parts)} carved from train per class, chosen by SHA-256 of file names" if carved else "as given"
    info = {"dataset": f"folder:{path}", "split_source": source, "official_split": not carved, "split_rule": rule, "dataset_dir": path
            if os.path.isdir(path) else os.path.dirname(path), "generated_splits": carved}
    logger.info("Own data %s: %d classes, split %s.", path, len(classnames), rule)
    return DatasetSplits(f"folder:{path}", classnames, DEFAULT_TEMPLATE, samples["train"], samples["val"],
                         samples["test"], info)
