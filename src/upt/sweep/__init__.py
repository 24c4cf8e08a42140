"""Sweeps: a protocol grid (methods x datasets x shots x seeds) run as one resumable command.

Typical use::

    grid = load_grid("grid.yaml", {"out": "runs/fewshot"})
    jobs = plan_jobs(grid, "runs/fewshot")
    summary = run_sweep(jobs, "runs/fewshot", workers=1)
"""

from upt.sweep.grid import Grid, grid_from_dict, load_grid
from upt.sweep.plan import Job, dataset_slug, plan_jobs
from upt.sweep.protocols import BENCHMARK, DG_TARGETS, PROTOCOLS, Protocol, get_protocol
from upt.sweep.runner import (
           FAILURES_FILE,
           Failure,
           SweepSummary,
           make_executor,
           run_sweep,
           run_sweep_submitit,
)

__all__ = ["BENCHMARK", "DG_TARGETS", "FAILURES_FILE", "PROTOCOLS", "Failure", "Grid", "Job", "Protocol",
           "SweepSummary", "dataset_slug", "get_protocol", "grid_from_dict", "load_grid", "make_executor", "plan_jobs", "run_sweep", "run_sweep_submitit"]
