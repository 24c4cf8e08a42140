"""Read a catalog dataset (CoOp layout, unchanged) or own data into :class:`DatasetSplits`.

The few readers that differ: CoOp split JSON, FGVC-Aircraft's official txt lists, ImageNet-style wnid
folders (ImageNet, -Sketch, -A, -R), ImageNetV2's numbered folders, and the synthetic ``shapes``.
Deliberate choices: ImageNet's val split is its test split, as in CoOp (``info["val_is_test"]``);
a missing split JSON falls back to a split that is a pure function of file names, not CoOp's
global-RNG one, and is flagged ``info["official_split"] = False`` with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from upt.data.base import (
    DatasetSplits,
    Sample,
    check_labels,
    clean_classname,
    warn_degenerate,
)
from upt.data.catalog import DatasetSpec, get_spec, missing_root_error, resolve_root
from upt.data.fallback import generated_split
from upt.data.folder import own_path, read_own, split_class_folders
from upt.data.splitfile import classnames_from_entries, raise_if_missing, read_split_file, to_samples
from upt.data.walk import entry_path, list_images, list_subdirs
from upt.errors import UptError

logger = logging.getLogger(__name__)
OWN_PREFIX = "folder:"


def canonical_dataset(name: str) -> str:
    """The name to store for a dataset: ``folder:PATH`` with PATH made absolute; catalog names unchanged.

    A run that stores ``folder:rel/path`` cannot be evaluated from another directory; this name can.
    """
    return OWN_PREFIX + own_path(name[len(OWN_PREFIX):]) if name.startswith(OWN_PREFIX) else name


def load_dataset(name: str, root: str | os.PathLike | None = None, *, check_files: bool = True,
                 train: bool = True) -> DatasetSplits:
    """Read a dataset into train/val/test samples with class names and template.

    Args:
        name: A catalog name (see :func:`upt.data.list_datasets`) or ``folder:PATH`` for own data.
        root: Data root holding the catalog folders; None means ``$UPT_DATA_ROOT`` or ``./data``.
            Ignored for ``folder:`` data.
        check_files: Raise when a split file lists images that do not exist (``upt data check``
            turns this off to report them instead).
        train: False when only the evaluation split is needed (zero-shot): ImageNet's
            ``images/train`` is then neither listed nor required.

    Returns:
        The splits, named by :func:`canonical_dataset` (``info["dataset"]``; what was typed is
        ``info["dataset_given"]``); ``info`` says where the split came from and whether it is the
        official one. Degenerate tasks (one class, a class without training images, two classes with
        one name) are read with a warning.

    Raises:
        UptError: Unknown name, missing folders, malformed or missing split files, missing images.
    """
    splits = _load(name, root, check_files, train)
    splits.info["dataset_given"] = name
    return warn_degenerate(check_labels(splits))


def _load(name: str, root: str | os.PathLike | None, check_files: bool, train: bool = True) -> DatasetSplits:
    if name.startswith(OWN_PREFIX):
        return read_own(name[len(OWN_PREFIX):], check_files)
    spec = get_spec(name)
    root = resolve_root(root)
    if spec.reader == "shapes":
        return _read_shapes(spec, root)
    if not os.path.isdir(root):
        raise missing_root_error(root, spec)
    ddir = spec.dataset_dir(root)
    if not os.path.isdir(ddir):
        raise UptError(f"Dataset folder {ddir} not found: it should hold {spec.layout}; "
                       f"`upt data info --dataset {name}` shows how to get it.")
    if spec.reader == "imagenet":
        splits = _read_imagenet(spec, ddir, check_files, train)
    else:
        splits = _READERS[spec.reader](spec, ddir, check_files)
    splits.info = {"dataset": name, "dataset_dir": ddir, "official_split": True, **splits.info}
    splits.ensemble_with_template = spec.ensemble_with_template
    logger.info("Read %s from %s: %d classes, %s.", name, ddir, splits.num_classes, splits.counts())
    return splits


def _image_dir(spec: DatasetSpec, ddir: str) -> str:
    path = os.path.join(ddir, spec.image_dir) if spec.image_dir else ddir
    if not os.path.isdir(path):
        raise UptError(f"Image folder {path} not found: {spec.name} needs {spec.layout} inside {ddir}.")
    return path


def _make(spec: DatasetSpec, classnames: list[str], train: list[Sample], val: list[Sample],
          test: list[Sample], **info) -> DatasetSplits:
    return DatasetSplits(spec.name, classnames, spec.template, train, val, test, info)


def _read_split_json(spec: DatasetSpec, ddir: str, check_files: bool) -> DatasetSplits:
    image_dir = _image_dir(spec, ddir)
    split_path = os.path.join(ddir, spec.split_file)
    if not os.path.isfile(split_path):
        classnames, samples, info = generated_split(spec, ddir, image_dir)
        if check_files:
            raise_if_missing([x for v in samples.values() for x in v], "The generated split", image_dir, spec.name)
        return _make(spec, classnames, samples["train"], samples["val"], samples["test"], image_dir=image_dir, **info)
    entries = read_split_file(split_path)
    classnames = classnames_from_entries(entries, split_path, spec.rename_map)
    samples = {s: to_samples(entries[s], image_dir, split_path) for s in entries}
    if check_files:
        raise_if_missing([x for v in samples.values() for x in v], split_path, image_dir, spec.name)
    return _make(spec, classnames, samples["train"], samples["val"], samples["test"],
                 split_source=spec.split_file, image_dir=image_dir)


def _read_fgvc(spec: DatasetSpec, ddir: str, check_files: bool) -> DatasetSplits:
    image_dir = _image_dir(spec, ddir)
    variants = _read_lines(os.path.join(ddir, "variants.txt"), "one aircraft variant per line")
    index = {v: i for i, v in enumerate(variants)}
    splits: dict[str, list[Sample]] = {}
    for split in ("train", "val", "test"):
        path = os.path.join(ddir, f"images_variant_{split}.txt")
        samples = []
        for n, line in enumerate(_read_lines(path, "'<image id> <variant>' per line"), 1):
            image, _, variant = line.partition(" ")
            if variant not in index:
                raise UptError(f"{path} line {n} names variant '{variant}', which variants.txt does not list.")
            samples.append(Sample(entry_path(image_dir, image + ".jpg", f"Split file {path} (line {n})"), index[variant]))
        if check_files:
            raise_if_missing(samples, path, image_dir, spec.name)
        splits[split] = samples
    return _make(spec, [clean_classname(v) for v in variants], splits["train"], splits["val"], splits["test"],
                 split_source="images_variant_{train,val,test}.txt", image_dir=image_dir)


def _read_lines(path: str, what: str) -> list[str]:
    if not os.path.isfile(path):
        raise UptError(f"{path} not found: it should hold {what}.")
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def read_classnames(path: str) -> dict[str, str]:
    """``classnames.txt``: ``<wnid> <class name>`` per line, in file order."""
    names = {}
    for n, line in enumerate(_read_lines(path, "'<wnid> <class name>' per line (copy imagenet/classnames.txt)"), 1):
        wnid, _, name = line.partition(" ")
        if not name.strip():
            raise UptError(f"{path} line {n} has no class name after '{wnid}'; each line is '<wnid> <class name>'.")
        names[wnid] = clean_classname(name)
    return names


def _wnid_samples(folder: str, wnids: list[str], label_of: dict[str, int], listing: str, root: str,
                  seen: set[str]) -> list[Sample]:
    """Samples of the class folders ``wnids`` of ``folder``; ``seen`` (shared) lists every folder once."""
    samples = []
    for wnid in wnids:
        if wnid not in label_of:
            raise UptError(f"Folder {os.path.join(folder, wnid)} is not a class listed in {listing}.")
        class_dir = os.path.join(folder, wnid)
        images = list_images(class_dir, root, seen)
        if not images:
            raise UptError(f"Class folder {class_dir} holds no images; add images or remove the folder.")
        samples += [Sample(os.path.join(class_dir, n), label_of[wnid]) for n in images]
    return samples


def _warn_absent(name: str, folder: str, wnids: list[str]) -> None:
    absent = [w for w in wnids if not os.path.isdir(os.path.join(folder, w))]
    if absent:
        logger.warning("%s: %d of %d classes have no folder in %s (e.g. %s).", name, len(absent), len(wnids),
                       folder, absent[0])


def _read_imagenet(spec: DatasetSpec, ddir: str, check_files: bool, train: bool = True) -> DatasetSplits:
    listing = os.path.join(ddir, "classnames.txt")
    names = read_classnames(listing)
    wnids = sorted(names)  # CoOp: labels follow sorted wnid order
    label_of = {w: i for i, w in enumerate(wnids)}
    image_dir = _image_dir(spec, ddir)
    seen: set[str] = set()  # shared: a val class folder linked to a train one is skipped, not read twice
    folders = {}
    for split in ("train", "val") if train else ("val",):
        folder = os.path.join(image_dir, split)
        if not os.path.isdir(folder):
            raise UptError(f"Folder {folder} not found: it should hold one folder per wnid with ImageNet's {split} images.")
        _warn_absent(spec.name, folder, wnids)
        folders[split] = list_subdirs(folder, image_dir, seen)
    parts = {split: _wnid_samples(os.path.join(image_dir, split), found, label_of, listing, image_dir, seen)
             for split, found in folders.items()}
    test = parts["val"]
    return _make(spec, [names[w] for w in wnids], parts.get("train", []), list(test), test,
                 split_source="images/train, images/val (val is test, as in CoOp)", val_is_test=True)


def _read_wnid_folders(spec: DatasetSpec, ddir: str, check_files: bool) -> DatasetSplits:
    listing = os.path.join(ddir, "classnames.txt")
    names = read_classnames(listing)
    image_dir = _image_dir(spec, ddir)
    if spec.reader == "wnid_subset":  # ImageNet-A/-R: their own label space, the wnids present
        wnids = list_subdirs(image_dir)
        unknown = [w for w in wnids if w not in names]
        if unknown:
            raise UptError(f"Folder {os.path.join(image_dir, unknown[0])} is not a class listed in {listing}.")
    else:  # ImageNet-Sketch: ImageNet's label space, so prompts trained on ImageNet line up
        wnids = sorted(names)
        _warn_absent(spec.name, image_dir, wnids)
    seen: set[str] = set()
    test = _wnid_samples(image_dir, list_subdirs(image_dir, seen=seen), {w: i for i, w in enumerate(wnids)},
                         listing, image_dir, seen)
    return _make(spec, [names[w] for w in wnids], [], [], test, split_source=spec.image_dir, test_only=True)


def _read_imagenetv2(spec: DatasetSpec, ddir: str, check_files: bool) -> DatasetSplits:
    listing = os.path.join(ddir, "classnames.txt")
    names = list(read_classnames(listing).values())  # file order, as CoOp
    image_dir = _image_dir(spec, ddir)
    seen: set[str] = set()
    folders = list_subdirs(image_dir, seen=seen)
    bad = [f for f in folders if not f.isdigit() or int(f) >= len(names)]
    if bad:
        raise UptError(f"Folder {os.path.join(image_dir, bad[0])} is not a class index 0..{len(names) - 1}.")
    test = _wnid_samples(image_dir, folders, {f: int(f) for f in folders}, listing, image_dir, seen)
    test.sort(key=lambda s: (s.label, s.path))
    return _make(spec, names, [], [], test, split_source=spec.image_dir, test_only=True)


def _read_shapes(spec: DatasetSpec, root: str) -> DatasetSplits:
    from upt.data.shapes import make_shapes  # draws with PIL; only needed here

    ddir = spec.dataset_dir(root)
    if not os.path.isdir(ddir):
        logger.info("Drawing the synthetic shapes dataset into %s (first use).", ddir)
        make_shapes(ddir)
    classnames, s = split_class_folders(ddir)
    info = {"dataset": spec.name, "dataset_dir": ddir, "official_split": True, "image_dir": ddir,
            "split_source": "generated", "split_rule": "50/20/30 per class by SHA-256 of file names"}
    return _make(spec, classnames, s["train"], s["val"], s["test"], **info)


_READERS: dict[str, Callable[[DatasetSpec, str, bool], DatasetSplits]] = {
    "split_json": _read_split_json,
    "fgvc": _read_fgvc,
    "imagenet": _read_imagenet,
    "imagenetv2": _read_imagenetv2,
    "wnid_folders": _read_wnid_folders,
    "wnid_subset": _read_wnid_folders,
}
