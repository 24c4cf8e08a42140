"""Aggregate result records over seeds into the papers' tables: few-shot, base-to-new, transfer.

Conventions (also printed under every table):
- a cell is the mean over seeds, ± the standard deviation over seeds: population (``ddof=0``,
  numpy's default and what CoOp's ``parse_test_res.py`` prints) unless ``std="sample"`` (``ddof=1``);
  one seed has no ±.
- an average over datasets (or over transfer targets) is the mean of the per-dataset means, given
  only when every dataset of the table has that cell; otherwise it is missing, never estimated.
- base-to-new H = 2BN / (B + N) of the mean base and mean new accuracy (CoCoOp's convention), per
  dataset and for the average (H of the averaged B and N).
- zero-shot CLIP depends on neither shots nor seed: all its records of one (dataset, classes,
  backbone, weights, data) are one cell, shown with every shot count (``Table.shot_free``); its
  spread is shown only if those records disagree.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
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
ANY = None  # the shots of a shot-free method's cell


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


def shot_free_cell(values: Sequence[float], std: str = "population") -> Cell:
    """One cell from the records of a method that depends on neither shots nor seed (all equal: no ±)."""
    if not values:
        return MISSING
    spread = None
    if max(values) != min(values):  # they should be identical; a spread says they are not
        spread = statistics.pstdev(values) if STD[std] == 0 else statistics.stdev(values)
    return Cell(statistics.fmean(values), spread, len(values), ())


def _group(table: Table, key) -> None:
    """Fill ``table.cells`` by ``key(record)``: over seeds, or collapsed for a shot-free method.

    A record whose cell already holds its seed (which labels make impossible for distinct
    results) is moved to ``table.clashes``, never averaged in or overwritten silently.
    """
    groups: dict[tuple, dict[int, float]] = defaultdict(dict)
    free: dict[tuple, list[float]] = defaultdict(list)
    first: dict[tuple, Record] = {}
    for r in table.records:
        k = key(r)[:-1] + (ANY,) if r.shot_free else key(r)
        if not r.shot_free and (other := first.setdefault((*k, r.seed), r)) is not r:
            table.clashes[r.path] = other.path
            continue
        if r.shot_free:
            free[k].append(r.accuracy)
        else:
            groups[k][r.seed] = r.accuracy
    table.records = [r for r in table.records if r.path not in table.clashes]
    table.cells = {**{k: seed_cell(v, table.std) for k, v in groups.items()},
                   **{k: shot_free_cell(v, table.std) for k, v in free.items()}}


@dataclass
class Table:
    """A protocol's cells: ``cells[(column, method, dataset, shots)]``.

    ``column`` is ``acc`` (few-shot), ``base``/``new`` (base-to-new), or ``source``/a target
    dataset (transfer). ``datasets`` are the training datasets (transfer: the sources); ``method``
    is a record's ``label``. ``shots`` and ``seeds`` are those of the trained methods; a method in
    ``shot_free`` has one cell per dataset (shots ``ANY``), the same for every shot count, and when
    only such methods are present ``shots`` is ``[ANY]``. ``records`` are those the cells come from;
    ``clashes`` maps a record path left out to the one already in its cell.
    """

    protocol: str
    methods: list[str]
    datasets: list[str]
    shots: list[int | None]
    seeds: tuple[int, ...]
    columns: list[str]
    std: str
    cells: dict[tuple, Cell] = field(default_factory=dict)
    shot_free: frozenset[str] = frozenset()
    records: list[Record] = field(default_factory=list)
    clashes: dict[str, str] = field(default_factory=dict)

    def cell(self, column: str, method: str, dataset: str, shots: int | None) -> Cell:
        k = ANY if method in self.shot_free else shots
        return self.cells.get((column, method, dataset, k), MISSING)

    def subset(self, dataset: str | None = None, shots: int | None = ANY) -> list[Record]:
        """The records behind one sub-table: of ``dataset`` (None: all) at ``shots`` (shot-free ones always)."""
        return [r for r in self.records if (dataset is None or r.dataset == dataset)
                and (r.shot_free or shots is ANY or r.shots == shots)]

    def mean(self, column: str, method: str, dataset: str, shots: int | None) -> float | None:
        return self.cell(column, method, dataset, shots).mean

    def average(self, column: str, method: str, shots: int | None) -> tuple[float | None, int]:
        """Mean over datasets of ``column`` (None unless all present) and how many are present."""
        means = [self.mean(column, method, d, shots) for d in self.datasets]
        return complete_mean(means), sum(m is not None for m in means)

    def harmonic(self, method: str, dataset: str, shots: int | None) -> float | None:
        return harmonic(self.mean("base", method, dataset, shots), self.mean("new", method, dataset, shots))

    def target_average(self, method: str, dataset: str, shots: int | None) -> float | None:
        """Transfer: mean over the target columns, None unless every target is present."""
        return complete_mean([self.mean(t, method, dataset, shots) for t in self.columns if t != "source"])


def _frame(protocol: str, records: list[Record], columns: list[str], std: str) -> Table:
    trained = [r for r in records if not r.shot_free]
    return Table(protocol, order_methods(r.label for r in records), order_datasets(r.dataset for r in records),
                 sorted({r.shots for r in trained}) or [ANY], tuple(sorted({r.seed for r in trained})), columns,
                 std, shot_free=frozenset(r.label for r in records if r.shot_free), records=list(records))


def fewshot_table(records: Sequence[Record], std: str = "population") -> Table | None:
    """Few-shot protocol: each method trained and tested on all classes of a dataset."""
    rs = [r for r in records if r.protocol == "fewshot" and r.kind == "train" and r.classes == "all"]
    if not rs:
        return None
    table = _frame("fewshot", rs, ["acc"], std)
    _group(table, lambda r: ("acc", r.label, r.dataset, r.shots))
    return table


def base2new_table(records: Sequence[Record], std: str = "population") -> Table | None:
    """Base-to-new: base accuracy from the training run, new accuracy from its ``--classes new`` eval."""
    rs = [r for r in records if r.protocol == "base2new" and r.eval_dataset == r.dataset
          and r.classes in ("base", "new")]
    if not rs:
        return None
    table = _frame("base2new", rs, ["base", "new"], std)
    _group(table, lambda r: (r.classes, r.label, r.dataset, r.shots))
    return table


def transfer_table(records: Sequence[Record], protocol: str, std: str = "population") -> Table | None:
    """Domain generalisation / cross-dataset: the source's own accuracy, then each target's."""
    rs = [r for r in records if r.protocol == protocol and r.classes == "all"]
    if not rs:
        return None
    targets = order_datasets(r.eval_dataset for r in rs if r.eval_dataset != r.dataset)
    table = _frame(protocol, rs, ["source", *targets], std)
    _group(table, lambda r: ("source" if r.eval_dataset == r.dataset else r.eval_dataset, r.label, r.dataset,
                             r.shots))
    return table
