"""Run a sweep's jobs: skip what is done, resume what crashed, record what fails and go on.

With one worker every step runs in this process (``train_run(job.config)``, ``eval_run``; no
start-up cost per run); with N > 1 each step is a ``python -m upt`` subprocess, N at a time, pinned
one per GPU when GPUs exist, training from the job's resolved config file (``upt train --config
ROOT/sweep-jobs/<run>.yaml``). Either way a failing run cannot stop the sweep: its one-line error
and the command that reproduces it go to ``ROOT/sweep-failures.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Queue

from upt.errors import UptError
from upt.sweep.execute import in_process, in_subprocess, worker_envs
from upt.sweep.plan import Job, command

log = logging.getLogger(__name__)
FAILURES_FILE = "sweep-failures.jsonl"
LOG_DIR = "sweep-logs"


@dataclass(frozen=True)
class Step:
    """One step of a job: its name, how to run it here, and the ``upt`` arguments that run it elsewhere."""

    name: str
    run: Callable[[], object]
    argv: list[str]


Execute = Callable[[Step, Path], "str | None"]  # (step, log file) -> error or None


@dataclass
class Failure:
    """A step that failed: its run folder (relative to the root), the step, the command, the error."""

    run: str
    step: str
    command: str
    error: str
    log: str | None = None
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))


@dataclass
class SweepSummary:
    """What a sweep did: jobs found complete, steps run now, and the failures."""

    jobs: int
    already_done: int = 0
    steps_run: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def run_sweep(jobs: Sequence[Job], root: str | Path, workers: int = 1) -> SweepSummary:
    """Run every step not yet done; failures are recorded, the other jobs continue.

    Args:
        jobs: from :func:`upt.sweep.plan_jobs`.
        root: the sweep's output root (failure records and subprocess logs go there).
        workers: 1 runs steps in this process; N > 1 runs N ``python -m upt`` subprocesses at once.

    Returns:
        The summary; ``ROOT/sweep-failures.jsonl`` holds this sweep's failures (earlier records of
        other runs are kept).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    book = _Book(root, jobs)
    if workers <= 1:
        execute = in_process
        for index, job in enumerate(jobs, 1):
            _run_job(index, job, execute, book)
        return book.summary
    slots: Queue = Queue()
    # Pin one GPU per worker unless the grid names a device itself (cuda:N, cpu).
    envs = worker_envs(workers, pin_gpus=all(j.device in (None, "auto", "cuda") for j in jobs))
    for env in envs:
        slots.put(env)

    def work(index: int, job: Job) -> None:
        env = slots.get()
        try:
            _run_job(index, job, lambda step, path: in_subprocess(step.argv, path, env), book)
        finally:
            slots.put(env)

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for future in [pool.submit(work, i, job) for i, job in enumerate(jobs, 1)]:
            future.result()
    except BaseException:
        book.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return book.summary


def run_sweep_submitit(jobs: Sequence[Job], root: str | Path, executor) -> SweepSummary:
    """Submit every unfinished job to a submitit executor (SLURM, or its local executor) and wait.

    Each cluster job runs its run's steps in-process, with the same skip/resume rules; failures
    come back to this process, which records them in ``ROOT/sweep-failures.jsonl``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    book = _Book(root, jobs)
    todo = [(index, job) for index, job in enumerate(jobs, 1) if _pending_status(job, book)]
    submitted = []
    if todo:
        with executor.batch():  # one array job on SLURM
            submitted = [(job, executor.submit(_cluster_job, index, job, str(root))) for index, job in todo]
    log.info("submitted %d run(s) to %s", len(submitted), type(executor).__name__)
    for job, handle in submitted:
        try:
            steps, failures = handle.result()
        except Exception as exc:  # noqa: BLE001 - the cluster job itself died: record it, go on
            steps, failures = 0, [asdict(Failure(job.name, "cluster job", "", str(exc).strip().splitlines()[-1]))]
        book.summary.steps_run += steps
        for failure in failures:
            book.fail(Failure(**failure))
    return book.summary


def _cluster_job(index: int, job: Job, root: str) -> tuple[int, list[dict]]:
    """What one cluster job runs: the job's missing steps, in-process."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("upt").setLevel(logging.INFO)
    book = _Book(Path(root), [job], record=False)
    _run_job(index, job, in_process, book)
    return book.summary.steps_run, [asdict(f) for f in book.summary.failures]


def make_executor(kind: str, root: str | Path, **params):
    """A submitit executor: ``local`` (processes on this machine) or ``slurm``; logs under ROOT/submitit."""
    try:
        import submitit
    except ImportError:
        raise UptError("Cluster sweeps need submitit: pip install 'upt[cluster]' (or pip install submitit).") from None
    if kind not in ("local", "slurm"):
        raise UptError(f"Unknown executor '{kind}'; choose local or slurm.")
    executor = submitit.AutoExecutor(folder=Path(root) / "submitit", cluster=kind)
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


class _Book:
    """Shared, thread-safe bookkeeping: progress, counts, the failures file.

    ``record=False`` (inside a cluster job) collects failures without touching the file: the
    submitting process records them.
    """

    def __init__(self, root: Path, jobs: Sequence[Job], record: bool = True):
        self.root, self.lock, self.stop = root, threading.Lock(), threading.Event()
        self.summary = SweepSummary(len(jobs))
        self.path = root / FAILURES_FILE if record else None
        if self.path is not None:
            names = {j.name for j in jobs}
            kept = [line for line in _lines(self.path) if json.loads(line).get("run") not in names]
            self.path.write_text("".join(f"{line}\n" for line in kept))

    def log_file(self, job: Job, step: str) -> Path:
        name = f"{job.name}-{step}".replace("/", "_").replace(" ", "_").replace(":", "_")
        return self.root / LOG_DIR / f"{name}.txt"

    def fail(self, failure: Failure) -> None:
        with self.lock:
            self.summary.failures.append(failure)
            if self.path is not None:
                with self.path.open("a") as f:
                    f.write(json.dumps(asdict(failure)) + "\n")
        log.warning("FAILED %s (%s): %s", failure.run, failure.step, failure.error)

    def step(self, index: int, job: Job, what: str) -> None:
        with self.lock:
            self.summary.steps_run += 1
        log.info("[%d/%d] %s: %s", index, self.summary.jobs, job.name, what)


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            if isinstance(json.loads(line), dict):
                out.append(line)
    return out


def _pending_status(job: Job, book: _Book) -> str | None:
    """The job's status when something is left to run; None when it is done or cannot be checked."""
    try:
        status = job.status()
    except UptError as exc:
        book.fail(Failure(job.name, "check", "", str(exc)))
        return None
    if status == "done":
        with book.lock:
            book.summary.already_done += 1
        return None
    return status


def job_steps(job: Job, status: str) -> list[Step]:
    """What is left of ``job`` in state ``status`` (see :meth:`Job.status`): training, then evaluations."""
    from upt.engine import eval_run, train_run

    steps = []
    if status in ("todo", "resume"):
        resume = status == "resume"
        steps.append(Step("train", lambda: train_run(job.config, job.run_dir, resume=resume), job.train_argv(resume)))
    for dataset, classes in job.evals:
        if status in ("todo", "resume") or not job.evaluated(dataset, classes):
            steps.append(Step(f"eval {dataset} {classes}",
                              lambda d=dataset, c=classes: eval_run(job.run_dir, d, None, c, job.device or "auto"),
                              job.eval_argv(dataset, classes)))
    return steps


def _run_job(index: int, job: Job, execute: Execute, book: _Book) -> None:
    if book.stop.is_set():
        return
    status = _pending_status(job, book)
    if status is None:
        return
    for step in job_steps(job, status):
        if book.stop.is_set():
            return
        book.step(index, job, step.name + (" (resume)" if "--resume" in step.argv else ""))
        path = book.log_file(job, step.name)
        if step.name == "train":
            job.write_config()  # what a worker process reads, and what the failure record's command names
        error = execute(step, path)
        if error is not None:
            book.fail(Failure(job.name, step.name, command(step.argv), error, str(path) if path.exists() else None))
            if step.name == "train":
                return  # nothing to evaluate
