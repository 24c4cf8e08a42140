"""Expand a grid into jobs: one run folder per (method, dataset, shots, seed), the resolved
:class:`~upt.engine.config.RunConfig` it trains with, the evaluations after it, and what on disk says
each step is already done.

Run folders are ``ROOT/<protocol>/<dataset>/<method>/<shots>shot/seed<seed>``; a ``folder:`` dataset
is named by its last path component. A job's config is resolved exactly as ``upt train`` resolves
flags (:func:`upt.engine.config.resolve`); settings that depend on the machine (``device``,
``precision: auto``) stay unresolved until the job runs, on the machine that runs it.
"""

from __future__ import annotations

import functools
import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

from upt.engine.config import RunConfig, config_text, fill_defaults, resolve
from upt.engine.presets import merge
from upt.engine.resume import config_differences
from upt.errors import UptError
from upt.methods import get_method_class
from upt.sweep.grid import Grid, run_settings

log = logging.getLogger(__name__)
RESULTS = "results.json"
JOBS_DIR = "sweep-jobs"  # ROOT/sweep-jobs/<run name>.yaml: each job's config, as `upt train --config` takes it
STORE_DIR = "feature-store"  # ROOT/feature-store: frozen-encoder features shared by the sweep's runs


@dataclass(frozen=True)
class Job:
    """One grid cell: a training run, then the evaluations its protocol asks for.

    Attributes:
        name: the run folder relative to the sweep root.
        run_dir: the run folder.
        config: the resolved run config the cell trains with. An existing run folder whose
            ``config.yaml`` differs from it (beyond cost-only settings) is an error naming the keys.
        config_file: where the config is written for a worker process or a cluster job
            (``upt train --config FILE --out RUN_DIR``).
        evals: (dataset, classes) pairs evaluated with ``upt eval`` after training.
        device: ``--device`` for the evaluations (None: the default).
    """

    name: str
    run_dir: Path
    config: RunConfig
    config_file: Path
    evals: tuple[tuple[str, str], ...] = ()
    device: str | None = None

    @functools.cached_property
    def filled(self) -> RunConfig:
        """:attr:`config` with every default written out, as the run's ``config.yaml`` will hold it."""
        return fill_defaults(self.config)

    @property
    def identity(self) -> dict:
        """Fields its ``results.json`` must carry (a folder holding another run is an error)."""
        return {k: getattr(self.filled, k) for k in ("method", "dataset", "shots", "seed", "protocol", "classes",
                                                     "backbone", "pretrained")}

    def write_config(self) -> Path:
        """Write :attr:`config_file` (what a worker process or a cluster job reads); returns it."""
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(config_text(self.config))
        return self.config_file

    def train_argv(self, resume: bool = False) -> list[str]:
        """``upt`` arguments that train this job from :attr:`config_file`."""
        return ["train", "--config", str(self.config_file), "--out", str(self.run_dir), *(["--resume"] if resume else [])]

    def eval_argv(self, dataset: str, classes: str) -> list[str]:
        """``upt`` arguments of one evaluation."""
        device = ["--device", self.device] if self.device else []
        return ["eval", "--run", str(self.run_dir), "--dataset", dataset, "--classes", classes, *device]

    def describe(self) -> str:
        """The cell in words: ``coop on folder:/d/flowers5, all classes, 16 shots, seed 1``."""
        c = self.config
        return f"{c.method} on {c.dataset}, {c.classes} classes, {c.shots} shots, seed {c.seed}"

    def trained(self) -> bool:
        """Whether training finished (``results.json`` exists and is this job's run)."""
        path = self.run_dir / RESULTS
        if not path.exists():
            return False
        results = _read(path)
        wrong = {k: (results.get(k), v) for k, v in self.identity.items() if results.get(k) != v}
        if wrong:
            detail = ", ".join(f"{k} {have!r} instead of {want!r}" for k, (have, want) in wrong.items())
            raise UptError(f"Run folder {self.run_dir} holds another run ({detail}); use another sweep root.")
        stored = _read_yaml(self.run_dir / "config.yaml")
        if stored:
            diff = config_differences(stored, self._as_resolved_there(stored))
            if diff:
                raise UptError(f"Run folder {self.run_dir} was trained with other settings ({'; '.join(diff)}); "
                               "use another sweep root (or remove the folder to retrain it).")
        return True

    def _as_resolved_there(self, stored: dict) -> dict:
        """This job's config with every default written out; ``precision: auto`` as the machine that
        trained the run resolved it (a sweep planned on a CPU login node must not see bf16 as a change)."""
        filled = self.filled.to_dict()
        if self.config.precision == "auto" and "precision" in stored:
            filled["precision"] = stored["precision"]
        return filled

    def evaluated(self, dataset: str, classes: str) -> bool:
        """Whether an ``eval/*.json`` record of (dataset, classes) exists in the run folder."""
        for path in sorted((self.run_dir / "eval").glob("*.json")):
            record = _read(path)
            if record.get("eval_dataset") == dataset and record.get("classes") == classes:
                return True
        return False

    def started(self) -> bool:
        """Whether a training run began here (resume it rather than start over)."""
        from upt.engine.rundir import RUN_MARKERS

        return any((self.run_dir / m).exists() for m in RUN_MARKERS)

    def status(self) -> str:
        """``done``, ``eval`` (trained, evaluations missing), ``resume`` (crashed mid-run) or ``todo``."""
        if self.trained():
            return "done" if all(self.evaluated(d, c) for d, c in self.evals) else "eval"
        return "resume" if self.started() else "todo"


def command(argv: list[str]) -> str:
    """``argv`` as the ``upt`` command line a person would type."""
    return shlex.join(["upt", *argv])


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}  # a half-written file counts as absent: the step runs again


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def dataset_slug(dataset: str) -> str:
    """Folder name of a dataset: the catalog name, or the last component of a ``folder:`` path."""
    if dataset.startswith("folder:"):
        return Path(dataset[len("folder:"):].rstrip("/")).name or "folder"
    return dataset


def plan_jobs(grid: Grid, root: str | Path) -> list[Job]:
    """Every job of ``grid`` under ``root``, each config resolved (and so checked) before anything runs."""
    root = Path(root)
    proto = grid.protocol_spec
    slugs = {d: dataset_slug(d) for d in grid.datasets}
    if len(set(slugs.values())) < len(slugs):
        raise UptError(f"Two datasets of the grid would share a run folder name: {slugs}; rename a folder.")
    jobs = []
    for dataset in grid.datasets:
        targets = [t for t in grid.targets if t != dataset] if grid.targets else proto.default_targets(dataset)
        evals = [(t, "all") for t in targets]
        if proto.eval_classes:
            evals.append((dataset, proto.eval_classes))
        for method in grid.methods:
            # A method that uses no labelled image (zero-shot) runs once per dataset, recorded as 0 shots.
            once = not get_method_class(method).needs_training_data
            for shots in [0] if once else grid.shots:
                for seed in grid.seeds[:1] if once else grid.seeds:
                    name = f"{grid.protocol}/{slugs[dataset]}/{method}/{shots}shot/seed{seed}"
                    config = job_config(grid, method, dataset, shots, seed, (root / STORE_DIR).absolute())
                    jobs.append(Job(name, root / name, config, root / JOBS_DIR / f"{name}.yaml", tuple(evals),
                                    grid.device))
    return jobs


def job_config(grid: Grid, method: str, dataset: str, shots: int, seed: int, store: Path) -> RunConfig:
    """The run config of one cell: the grid's settings and presets, resolved as ``upt train`` resolves them;
    ``compute.feature_store: auto`` becomes the sweep's own ``store`` (shared by all its runs)."""
    cell = {"method": method, "dataset": dataset, "shots": shots, "seed": seed, "protocol": grid.protocol,
            "classes": grid.protocol_spec.classes}
    cfg = resolve(merge(run_settings(grid), cell), grid.config, [*grid.overrides, *grid.method_set.get(method, [])])
    if cfg.compute.feature_store == "auto":
        cfg.compute.feature_store = str(store)
    return cfg
