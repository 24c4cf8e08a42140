"""Expand a grid into jobs: one run folder per (method, dataset, shots, seed), its ``upt`` commands,
and what on disk says each step is already done.

Run folders are ``ROOT/<protocol>/<dataset>/<method>/<shots>shot/seed<seed>``; a ``folder:`` dataset
is named by its last path component.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from upt.errors import UptError
from upt.methods import get_method_class
from upt.sweep.grid import Grid, flag_args

log = logging.getLogger(__name__)
RESULTS = "results.json"


@dataclass(frozen=True)
class Job:
    """One grid cell: a training run, then the evaluations its protocol asks for.

    Attributes:
        name: the run folder relative to the sweep root.
        run_dir: the run folder.
        identity: fields its ``results.json`` must carry (a folder holding another run is an error).
        config: the fully resolved run config the cell trains with; an existing run folder whose
            ``config.yaml`` differs (beyond cost-only settings) is an error naming the keys.
        train_args: ``upt`` arguments of the training run.
        evals: (dataset, classes) pairs evaluated with ``upt eval`` after training.
        device: ``--device`` for the evaluations (None: the default).
    """

    name: str
    run_dir: Path
    identity: dict
    train_args: tuple[str, ...]
    evals: tuple[tuple[str, str], ...] = ()
    device: str | None = None
    config: dict | None = None

    def eval_args(self, dataset: str, classes: str) -> tuple[str, ...]:
        device = ("--device", self.device) if self.device else ()
        return ("eval", "--run", str(self.run_dir), "--dataset", dataset, "--classes", classes, *device)

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
        if self.config is not None and stored:
            from upt.engine.config import config_differences

            diff = config_differences(stored, self.config)
            if diff:
                raise UptError(f"Run folder {self.run_dir} was trained with other settings ({'; '.join(diff)}); "
                               "use another sweep root (or remove the folder to retrain it).")
        return True

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
    """Every job of ``grid`` under ``root``, checked to resolve into valid run configs first."""
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
                    args = tuple(_train_args(grid, method, dataset, shots, seed, root / name))
                    config = _resolved_config(args)
                    identity = {k: config[k] for k in ("method", "dataset", "shots", "seed", "protocol", "classes",
                                                       "backbone", "pretrained")}
                    jobs.append(Job(name, root / name, identity, args, tuple(evals), grid.device, config))
    return jobs


def _train_args(grid: Grid, method: str, dataset: str, shots: int, seed: int, out: Path) -> list[str]:
    args = ["train", "--method", method, "--dataset", dataset, "--shots", str(shots), "--seed", str(seed),
            "--protocol", grid.protocol, "--classes", grid.protocol_spec.classes, "--out", str(out),
            "--config", f"protocols/{grid.protocol}"]
    for preset in grid.config:
        args += ["--config", preset]
    args += flag_args(grid)
    for item in [*grid.overrides, *grid.method_set.get(method, [])]:
        args += ["--set", item]
    return args


def _resolved_config(argv: tuple[str, ...]) -> dict:
    """The fully resolved config ``upt train argv`` will run with (checked before anything runs)."""
    from upt.commands.train import config_from_args
    from upt.engine.config import fill_defaults

    try:
        args = _parser().parse_args(list(argv))
    except SystemExit:  # argparse has printed what is wrong
        raise UptError(f"The grid gives `upt train` invalid arguments: {' '.join(argv)}") from None
    return fill_defaults(config_from_args(args)).to_dict()


@functools.cache
def _parser():
    from upt.cli import build_parser

    return build_parser()
