"""Aggregate result records over seeds into the papers' tables: few-shot, base-to-new, transfer.

Conventions (also printed under every table):
- a cell is the mean over seeds, ± the standard deviation over seeds: population (``ddof=0``,
  numpy's default and what CoOp's ``parse_test_res.py`` prints) unless ``std="sample"`` (``ddof=1``);
  one seed has no ±.
- an average over datasets (or over transfer targets) is the mean of the per-dataset means, given
  only when every dataset of the table has that cell; otherwise it is missing, never estimated.
- base-to-new H = 2BN / (B + N) of the mean base and mean new accuracy (CoCoOp's convention), per
  dataset and for the average (H of the averaged B and N).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from upt.errors import UptError
from upt.report.collect import Record, order_datasets, order_methods

STD = {"population": 0, "sample": 1}


@dataclass(frozen=True)
class Cell:
    """Accuracy of one table cell over seeds (``n == 0``: missing)."""

    mean: float | None = None
    std: float | None = None
    n: int = 0
    seeds: tuple[int, ...] = ()

    @property
    def missing(self) -> bool:
        return self.n == 0


MISSING = Cell()


def seed_cell(by_seed: dict[int, float], std: str = "population") -> Cell:
    """Mean and standard deviation of per-seed accuracies (see module docstring for the std)."""
    if std not in STD:
        raise UptError(f"Unknown std '{std}'; choose population (ddof=0, CoOp's) or sample (ddof=1).")
    if not by_seed:
        return MISSING
    values = [by_seed[s] for s in sorted(by_seed)]
    spread = None
    if len(values) > 1:
        spread = statistics.pstdev(values) if STD[std] == 0 else statistics.stdev(values)
    return Cell(statistics.fmean(values), spread, len(values), tuple(sorted(by_seed)))


def harmonic(base: float | None, new: float | None) -> float | None:
    """H = 2BN / (B + N); None when either is missing."""
    if base is None or new is None:
        return None
    return 0.0 if base + new == 0 else 2 * base * new / (base + new)


def complete_mean(values: Sequence[float | None]) -> float | None:
    """Mean of ``values`` when none is missing, else None (an average is never filled in)."""
    return statistics.fmean(values) if values and all(v is not None for v in values) else None


def _group(records: Iterable[Record], key, std: str) -> dict[tuple, Cell]:
    groups: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in records:
        groups[key(r)][r.seed] = r.accuracy
    return {k: seed_cell(v, std) for k, v in groups.items()}


@dataclass
class Table:
    """A protocol's cells: ``cells[(column, method, dataset, shots)]``.

    ``column`` is ``acc`` (few-shot), ``base``/``new`` (base-to-new), or ``source``/a target
    dataset (transfer). ``datasets`` are the training datasets (transfer: the sources).
    """

    protocol: str
    methods: list[str]
    datasets: list[str]
    shots: list[int]
    seeds: tuple[int, ...]
    columns: list[str]
    std: str
    cells: dict[tuple, Cell] = field(default_factory=dict)

    def cell(self, column: str, method: str, dataset: str, shots: int) -> Cell:
        return self.cells.get((column, method, dataset, shots), MISSING)

    def mean(self, column: str, method: str, dataset: str, shots: int) -> float | None:
        return self.cell(column, method, dataset, shots).mean

    def average(self, column: str, method: str, shots: int) -> tuple[float | None, int]:
        """Mean over datasets of ``column`` (None unless all present) and how many are present."""
        means = [self.mean(column, method, d, shots) for d in self.datasets]
        return complete_mean(means), sum(m is not None for m in means)

    def harmonic(self, method: str, dataset: str, shots: int) -> float | None:
        return harmonic(self.mean("base", method, dataset, shots), self.mean("new", method, dataset, shots))

    def target_average(self, method: str, dataset: str, shots: int) -> float | None:
        """Transfer: mean over the target columns, None unless every target is present."""
        return complete_mean([self.mean(t, method, dataset, shots) for t in self.columns if t != "source"])


def _frame(protocol: str, records: list[Record], columns: list[str], std: str) -> Table:
    return Table(protocol, order_methods(r.label for r in records), order_datasets(r.dataset for r in records),
                 sorted({r.shots for r in records}), tuple(sorted({r.seed for r in records})), columns, std)


def fewshot_table(records: Sequence[Record], std: str = "population") -> Table | None:
    """Few-shot protocol: each method trained and tested on all classes of a dataset."""
    rs = [r for r in records if r.protocol == "fewshot" and r.kind == "train" and r.classes == "all"]
    if not rs:
        return None
    table = _frame("fewshot", rs, ["acc"], std)
    table.cells = _group(rs, lambda r: ("acc", r.label, r.dataset, r.shots), std)
    return table


def base2new_table(records: Sequence[Record], std: str = "population") -> Table | None:
    """Base-to-new: base accuracy from the training run, new accuracy from its ``--classes new`` eval."""
    rs = [r for r in records if r.protocol == "base2new" and r.eval_dataset == r.dataset
          and r.classes in ("base", "new")]
    if not rs:
        return None
    table = _frame("base2new", rs, ["base", "new"], std)
    table.cells = _group(rs, lambda r: (r.classes, r.label, r.dataset, r.shots), std)
    return table


def transfer_table(records: Sequence[Record], protocol: str, std: str = "population") -> Table | None:
    """Domain generalisation / cross-dataset: the source's own accuracy, then each target's."""
    rs = [r for r in records if r.protocol == protocol and r.classes == "all"]
    if not rs:
        return None
    targets = order_datasets(r.eval_dataset for r in rs if r.eval_dataset != r.dataset)
    table = _frame(protocol, rs, ["source", *targets], std)
    table.cells = _group(rs, lambda r: ("source" if r.eval_dataset == r.dataset else r.eval_dataset, r.label,
                                        r.dataset, r.shots), std)
    return table
