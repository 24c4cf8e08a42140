"""The records every reader returns, and the small helpers they share.

A dataset is read into a :class:`DatasetSplits`: class names in label order, the zero-shot template,
and three lists of :class:`Sample` (absolute path, label). Nothing here opens an image.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

from upt.errors import UptError
from upt.text import clean_classname  # noqa: F401  (the readers take it from here with the rest)

logger = logging.getLogger(__name__)

SplitName = Literal["train", "val", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "val", "test")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})
DEFAULT_TEMPLATE = "a photo of a {}."


class Sample(NamedTuple):
    """One labelled image: an absolute path and a 0-based label."""

    path: str
    label: int


@dataclass
class DatasetSplits:
    """A dataset read into train/val/test lists with its class names and template.

    Attributes:
        name: Dataset name as given to :func:`upt.data.load_dataset`.
        classnames: Class names in label order (label ``i`` is ``classnames[i]``).
        template: Zero-shot prompt template with one ``{}`` for the class name.
        train: Training samples.
        val: Validation samples.
        test: Test samples.
        info: Provenance: where the split came from, whether it is the official one, the dataset
            folder, and after :func:`upt.data.fewshot_splits` the chosen image list.
        ensemble_with_template: Whether a template ensemble includes ``template`` (CoOp's
            ``ZeroshotCLIP2`` leaves it out for ImageNet only).
    """

    name: str
    classnames: list[str]
    template: str
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    info: dict = field(default_factory=dict)
    ensemble_with_template: bool = True

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classnames)

    def split(self, name: SplitName) -> list[Sample]:
        """Return the samples of one split by name."""
        if name not in SPLITS:
            raise UptError(f"Unknown split '{name}'; use one of {', '.join(SPLITS)}.")
        return getattr(self, name)

    def counts(self) -> dict[str, int]:
        """Number of samples per split."""
        return {s: len(self.split(s)) for s in SPLITS}

    def prompts(self) -> list[str]:
        """The zero-shot prompt for every class, in label order."""
        return [self.template.format(c) for c in self.classnames]

    def replace(self, **changes: object) -> DatasetSplits:
        """Return a copy with some fields changed (``info`` is copied, not shared)."""
        changes.setdefault("info", dict(self.info))
        return replace(self, **changes)


def is_image(name: str) -> bool:
    """Whether a file name has an image extension (case-insensitive); hidden files are not images."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def stable_rank(names: Iterable[str]) -> list[str]:
    """Order names by the SHA-256 of each name: a shuffle that is the same on every machine."""
    return sorted(names, key=lambda n: (hashlib.sha256(n.encode("utf-8")).hexdigest(), n))


def _part(n: int, p: float) -> int:
    return int(n * p + 0.5)  # round half up; Python's round() is banker's rounding


def carve(
    names: Sequence[str], p_val: float, p_test: float, where: str
) -> tuple[list[str], list[str], list[str]]:
    """Split one class's file names into train/val/test by :func:`stable_rank`.

    A pure function of the names: adding an unrelated class or re-running never moves an image.

    Args:
        names: File names of one class (paths relative to the class folder).
        p_val: Fraction for val (0 when the data already has a val split).
        p_test: Fraction for test (0 when the data already has a test split).
        where: What holds the names, for the error message (``"Class folder /data/x/daisy"``).

    Returns:
        Sorted (train, val, test) name lists.
    """
    n = len(names)
    n_val, n_test = _part(n, p_val), _part(n, p_test)
    n_val = max(n_val, 1) if p_val > 0 else 0
    n_test = max(n_test, 1) if p_test > 0 else 0
    if n - n_val - n_test < 1:
        need = 1 + (p_val > 0) + (p_test > 0)
        raise UptError(f"{where} holds {n} image(s); splitting it needs at least {need}.")
    ranked = stable_rank(names)
    test, val, train = ranked[:n_test], ranked[n_test : n_test + n_val], ranked[n_test + n_val :]
    return sorted(train), sorted(val), sorted(test)


def check_labels(splits: DatasetSplits) -> DatasetSplits:
    """Verify every label indexes ``classnames``; return ``splits`` unchanged."""
    n = len(splits.classnames)
    if n == 0:
        raise UptError(f"Dataset '{splits.name}' has no classes.")
    for s in SPLITS:
        bad = [x for x in splits.split(s) if not 0 <= x.label < n]
        if bad:
            raise UptError(f"{s} sample {bad[0].path} has label {bad[0].label}, outside 0..{n - 1}.")
    return splits


def _labels_text(labels: Sequence[int]) -> str:
    return ", ".join(map(str, labels[:-1])) + f" and {labels[-1]}"


def warn_degenerate(splits: DatasetSplits) -> DatasetSplits:
    """Warn loudly about a task that is not what it seems, and go on; return ``splits`` unchanged.

    Three cases: exactly one class (every prediction is right); a class with test images but no
    training images (training never sees it; test-only datasets have no training images at all and
    are not flagged); in own folders, class names that are equal once cleaned and lower-cased, as
    CLIP's tokenizer does (``golden_retriever`` and ``Golden retriever``): their prompts are
    identical, so the model cannot tell the classes apart. (A catalog dataset's class list is the
    published one, ImageNet's two "crane"s included, and is not warned about on every read.)
    """
    name, classes = splits.name, splits.classnames
    if len(classes) == 1:
        logger.warning("Dataset %s has exactly one class ('%s'): every image gets that label, so accuracy is "
                       "100%% whatever the model does; add images of at least one more class.", name, classes[0])
    train = Counter(s.label for s in splits.train)
    starved = sorted({s.label for s in splits.test} - set(train)) if splits.train else []
    if starved:
        logger.warning("Dataset %s: %d class(es) have test images but no training images (e.g. '%s', label %d); "
                       "training never sees them, so their test accuracy measures zero-shot transfer only.",
                       name, len(starved), classes[starved[0]], starved[0])
    same: dict[str, list[int]] = {}
    for label, c in enumerate(classes if name.startswith("folder:") else ()):  # catalog lists are as published
        same.setdefault(c.casefold(), []).append(label)
    clashes = [labels for labels in same.values() if len(labels) > 1]
    if clashes:
        first = clashes[0]
        more = f" ({len(clashes) - 1} more such group(s))" if len(clashes) > 1 else ""
        logger.warning("Dataset %s: labels %s share the name '%s' once cleaned%s, so their prompts are identical "
                       "and the model cannot tell them apart; rename the folders or classes so names differ.",
                       name, _labels_text(first), classes[first[0]], more)
    return splits
