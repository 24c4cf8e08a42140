"""Training, evaluation and run folders: one loop for every method."""

from upt.engine.config import RunConfig, resolve
from upt.engine.run import eval_run, train_run
from upt.engine.rundir import load_run

__all__ = ["RunConfig", "eval_run", "load_run", "resolve", "train_run"]
