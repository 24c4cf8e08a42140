"""``upt sweep``: run a protocol grid (methods x datasets x shots x seeds), resumably."""

from __future__ import annotations

import argparse


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a grid of runs under one protocol (skips finished runs)",
                       description="Run methods x datasets x shots x seeds under one protocol, one run folder "
                       "each under ROOT/<protocol>/<dataset>/<method>/<K>shot/seed<S>. Finished runs are "
                       "skipped, crashed ones resumed, failures recorded in ROOT/sweep-failures.jsonl.")
    p.add_argument("grid", nargs="?", help="grid YAML (protocol, methods, datasets, shots, seeds, ...); "
                   "flags below override it")
    p.add_argument("--protocol", help="fewshot, base2new, dg or cross-dataset (default fewshot)")
    p.add_argument("--methods", help="comma-separated methods, e.g. coop,upt")
    p.add_argument("--datasets", help="comma-separated training datasets (catalog names or folder:PATH)")
    p.add_argument("--targets", help="dg / cross-dataset: comma-separated evaluation datasets")
    p.add_argument("--shots", type=_ints, help="comma-separated shot counts, e.g. 1,2,4,8,16")
    p.add_argument("--seeds", type=_ints, help="comma-separated seeds (default 1,2,3)")
    for flag in ("backbone", "pretrained", "data-root", "device", "precision"):
        p.add_argument(f"--{flag}")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--config", action="append", metavar="YAML", help="run preset(s) for every run")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every run")
    p.add_argument("--out", metavar="ROOT", help="output root (default: the grid's 'out', else runs)")
    p.add_argument("--workers", type=int, default=1,
                   help="runs at once: 1 runs in this process; N > 1 starts N processes (one per GPU)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the runs and their state, the image-encoder passes and an estimated time; run nothing")
    c = p.add_argument_group("cluster (submitit: pip install 'upt[cluster]')")
    c.add_argument("--executor", choices=["local", "slurm"],
                   help="submit each run as a submitit job: slurm on a cluster, local for processes here")
    c.add_argument("--partition", help="SLURM partition")
    c.add_argument("--timeout-min", type=int, default=24 * 60, help="time limit per run, minutes")
    c.add_argument("--gpus-per-job", type=int, help="GPUs per run (default 1 on slurm)")
    c.add_argument("--cpus-per-job", type=int, help="CPU cores per run")
    c.add_argument("--array-parallelism", type=int, help="SLURM: runs at once in the array job")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from upt.errors import UptError
    from upt.sweep import load_grid, plan_jobs, run_sweep

    if args.workers < 1:
        raise UptError(f"--workers must be at least 1, got {args.workers}.")
    keys = ("protocol", "methods", "datasets", "targets", "shots", "seeds", "backbone", "pretrained", "data_root",
            "device", "precision", "epochs", "max_steps", "config", "set", "out")
    grid = load_grid(args.grid, {k: getattr(args, k) for k in keys})
    root = grid.out or "runs"
    jobs = plan_jobs(grid, root)
    if args.dry_run:
        return _dry_run(jobs, root)
    if args.executor:
        from upt.sweep import make_executor, run_sweep_submitit

        executor = make_executor(
            args.executor, root, timeout_min=args.timeout_min, slurm_partition=args.partition,
            gpus_per_node=args.gpus_per_job if args.gpus_per_job is not None else (1 if args.executor == "slurm" else None),
            cpus_per_task=args.cpus_per_job, slurm_array_parallelism=args.array_parallelism)
        summary = run_sweep_submitit(jobs, root, executor)
    else:
        summary = run_sweep(jobs, root, workers=args.workers)
    print(f"sweep {root}: {summary.jobs} runs, {summary.already_done} already complete, "
          f"{summary.steps_run} steps run, {len(summary.failures)} failed")
    for f in summary.failures:
        print(f"  FAILED {f.run} ({f.step}): {f.error}")
    if summary.failures:
        print(f"failures recorded in {root}/sweep-failures.jsonl; fix them and run the same command again")
    return 0 if summary.ok else 1


def _dry_run(jobs, root: str) -> int:
    from upt.sweep.plan import JOBS_DIR, command

    counts: dict[str, int] = {}
    for job in jobs:
        status = job.status()
        counts[status] = counts.get(status, 0) + 1
        print(f"{status:7s} {job.name}")
        if status in ("todo", "resume"):
            print(f"          train {job.describe()}: {command(job.train_argv(resume=status == 'resume'))}")
        for dataset, classes in job.evals:
            if status != "done" and (status != "eval" or not job.evaluated(dataset, classes)):
                print(f"          {command(job.eval_argv(dataset, classes))}")
    from upt.sweep.cost import cost_report

    print(cost_report(jobs))
    print(f"dry run {root}: {len(jobs)} runs (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + "); "
          f"each run's resolved config goes to {root}/{JOBS_DIR}/ when it runs")
    return 0
