"""``upt data check``: is a dataset complete, in the right layout, and readable?

Compares per-split counts and the number of classes with CoOp's official numbers, names missing
files (a capped list and the count) and every unreadable image, and when the data cannot be read at
all (or only through a generated split) gives the manual steps to fix it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from upt.data.base import SPLITS
from upt.data.catalog import get_spec, manual_steps, resolve_root
from upt.data.images import verify_images
from upt.data.readers import OWN_PREFIX, load_dataset
from upt.data.splitfile import find_missing
from upt.errors import UptError

logger = logging.getLogger(__name__)


@dataclass
class CheckReport:
    """What ``upt data check`` found.

    Attributes:
        dataset: Dataset name.
        dataset_dir: Its folder (None when it could not be located).
        counts: Images per split as read.
        expected: Official images per split (None where unknown).
        classes: Classes read.
        expected_classes: Classes in the full dataset.
        missing: Missing files (at most ``max_listed``); ``n_missing`` is the full count.
        n_missing: How many files the split lists but are absent.
        unreadable: (path, reason) for every image that cannot be decoded.
        decoded: Whether images were decoded (False with ``--no-decode``).
        problems: One line per problem; empty means the dataset is fine.
        notes: Information that is not a problem.
        steps: Manual steps that fix the layout, when relevant.
    """

    dataset: str
    dataset_dir: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int | None] = field(default_factory=dict)
    classes: int | None = None
    expected_classes: int | None = None
    missing: list[str] = field(default_factory=list)
    n_missing: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    decoded: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: str | None = None

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def format(self) -> str:
        """The report as text for the terminal."""
        lines = [f"dataset {self.dataset}" + (f" at {self.dataset_dir}" if self.dataset_dir else "")]
        if self.counts:
            lines.append(f"  {'split':<6} {'images':>8} {'expected':>9}")
            for s in SPLITS:
                exp = self.expected.get(s)
                flag = "" if exp is None or exp == self.counts[s] else "  <- differs"
                lines.append(f"  {s:<6} {self.counts[s]:>8} {exp if exp is not None else '-':>9}{flag}")
            exp_cls = self.expected_classes if self.expected_classes is not None else "-"
            lines.append(f"  classes {self.classes} (expected {exp_cls})")
        if self.n_missing:
            lines.append(f"missing files: {self.n_missing}" + (" (first listed)" if self.n_missing > len(self.missing) else ""))
            lines += [f"  {p}" for p in self.missing]
        if self.unreadable:
            lines.append(f"unreadable images: {len(self.unreadable)}")
            lines += [f"  {msg}" for _, msg in self.unreadable]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"problem: {p}" for p in self.problems]
        if self.steps:
            lines += ["how to get it:", *(f"  {s}" for s in self.steps.splitlines())]
        lines.append("OK" if self.ok else f"{len(self.problems)} problem(s) found")
        return "\n".join(lines)


def check_dataset(name: str, root: str | os.PathLike | None = None, decode: bool = True,
                  max_listed: int = 20, workers: int | None = None) -> CheckReport:
    """Check one dataset.

    Args:
        name: Catalog name or ``folder:PATH``.
        root: Data root (see :func:`upt.data.load_dataset`).
        decode: Decode every image to find corrupt or truncated files (slow on ImageNet).
        max_listed: Most missing files to list.
        workers: Decoding threads.

    Returns:
        The report; ``report.ok`` is False when anything is wrong.
    """
    spec = None if name.startswith(OWN_PREFIX) else get_spec(name)
    report = CheckReport(dataset=name)
    if spec is not None:
        report.dataset_dir = spec.dataset_dir(resolve_root(root))
        report.expected, report.expected_classes = spec.expected, spec.num_classes
    try:
        splits = load_dataset(name, root, check_files=False)
    except UptError as exc:
        report.problems.append(str(exc))
        report.steps = manual_steps(spec) if spec is not None else None
        return report
    report.dataset_dir = splits.info.get("dataset_dir", report.dataset_dir)
    report.counts, report.classes = splits.counts(), splits.num_classes
    if not splits.info.get("official_split", True) and spec is not None:
        report.problems.append(splits.info.get("split_warning", "The split is not the official one."))
        report.steps = manual_steps(spec)
    if spec is not None:
        _compare(report, spec.num_classes)
    if splits.info.get("val_is_test"):
        report.notes.append("val is the test split (ImageNet has no separate val set; CoOp does the same).")
    paths = list(dict.fromkeys(s.path for split in SPLITS for s in splits.split(split)))
    missing = sorted(find_missing(paths))
    report.n_missing, report.missing = len(missing), missing[:max_listed]
    if missing:
        report.problems.append(f"{len(missing)} listed image(s) are missing.")
    if decode:
        present = set(paths) - set(missing)
        logger.info("Decoding %d images (use --no-decode to skip)...", len(present))
        report.unreadable = verify_images([p for p in paths if p in present], workers=workers)
        report.decoded = True
        if report.unreadable:
            report.problems.append(f"{len(report.unreadable)} image(s) cannot be read.")
    return report


def _compare(report: CheckReport, num_classes: int) -> None:
    for s in SPLITS:
        exp = report.expected.get(s)
        if exp is not None and report.counts[s] != exp:
            report.problems.append(f"{s} has {report.counts[s]} images; the official split has {exp}.")
    if report.classes != num_classes:
        report.problems.append(f"{report.classes} classes read; the full dataset has {num_classes}.")
