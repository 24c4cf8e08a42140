"""What to do when a CoOp split file is missing: CoOp's fallback split, made reproducible, or the steps.

CoOp splits the class folders 50/20/30 (DTD, Caltech101, EuroSAT, Food-101) or Pets' official
trainval 80/20 with the global RNG, then writes the result into the dataset folder. Here the split is
a pure function of file names (:func:`upt.data.base.carve`), nothing is written, and the result is
flagged ``official_split=False`` with a warning, because it is not the split published numbers use.
Flowers, Cars, SUN397 and UCF101 need files this library does not parse (.mat, partitions), so
their error says where to download the split file.
"""

from __future__ import annotations

import logging
import os

from upt.data.base import Sample, carve, clean_classname
from upt.data.catalog import DatasetSpec
from upt.data.folder import P_TEST, P_VAL, split_class_folders
from upt.errors import UptError

logger = logging.getLogger(__name__)


def generated_split(spec: DatasetSpec, ddir: str, image_dir: str) -> tuple[list[str], dict[str, list[Sample]], dict]:
    """Split a dataset whose split file is missing, as CoOp would, or raise with the manual steps.

    Returns:
        Class names, samples per split, and ``info`` entries that flag the split as generated.
    """
    get = f"download {spec.split_file} from {spec.split_url} into {ddir}/"
    if spec.fallback == "none":
        raise UptError(f"Split file {os.path.join(ddir, spec.split_file)} not found and {spec.name} cannot be "
                       f"split without it: {get}.")
    if spec.fallback == "folders":
        classnames, s = split_class_folders(image_dir, P_VAL, P_TEST, spec.ignored, spec.rename_map)
        rule = "50/20/30 per class by SHA-256 of file names"
    else:
        classnames, s = _pets_trainval(ddir, image_dir)
        rule = "official test; official trainval split 80/20 per class by SHA-256 of file names"
    warning = (f"{spec.split_file} not found in {ddir}: using a generated split ({rule}), which is NOT CoOp's "
               f"official split, so results are not comparable to published numbers; {get}.")
    logger.warning("WARNING: %s", warning)
    return classnames, s, {"split_source": "generated", "official_split": False, "split_rule": rule,
                           "split_warning": warning}


def _pets_trainval(ddir: str, image_dir: str) -> tuple[list[str], dict[str, list[Sample]]]:
    """Oxford Pets without CoOp's JSON: official test list, official trainval split 80/20 per class."""
    names: dict[int, str] = {}
    lists: dict[str, dict[int, list[str]]] = {}
    for split in ("trainval", "test"):
        path = os.path.join(ddir, "annotations", f"{split}.txt")
        if not os.path.isfile(path):
            raise UptError(f"{path} not found: Oxford Pets needs annotations/ from "
                           "https://www.robots.ox.ac.uk/~vgg/data/pets/ or CoOp's split file.")
        lists[split] = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if not parts or parts[0].startswith("#"):
                    continue
                if len(parts) < 2 or not parts[1].isdigit():
                    raise UptError(f"{path} has a line '{line.strip()}'; expected '<image> <class id> ...'.")
                image, label = parts[0], int(parts[1]) - 1  # the file's labels are 1-based
                names[label] = image.rsplit("_", 1)[0].lower()  # breed: file name minus its number
                lists[split].setdefault(label, []).append(image + ".jpg")
    out: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for label in sorted(lists["trainval"]):
        train, val, _ = carve(lists["trainval"][label], 0.2, 0.0, f"Pets class {names[label]}")
        out["train"] += [Sample(os.path.join(image_dir, n), label) for n in train]
        out["val"] += [Sample(os.path.join(image_dir, n), label) for n in val]
    for label in sorted(lists["test"]):
        out["test"] += [Sample(os.path.join(image_dir, n), label) for n in sorted(lists["test"][label])]
    return [clean_classname(names.get(i, str(i))) for i in range(max(names) + 1)], out
