"""train_run / eval_run: a RunConfig and a folder in, a self-describing run folder out."""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import sys
from pathlib import Path

import torch

from upt.backbone import load_backbone
from upt.backbone.weights import require_reachable_weights
from upt.data import base_new_split, canonical_dataset, fewshot_splits, load_dataset
from upt.engine import distributed as dist
from upt.engine.checkpoint import (
    META_FILE,
    PROMPT_FILE,
    git_revision,
    read_json,
    save_tensors,
    versions,
    write_json,
)
from upt.engine.config import RunConfig, fill_defaults
from upt.engine.evaluate import evaluate_split
from upt.engine.fit import fit
from upt.engine.loaders import (
    check_images,
)
from upt.engine.precision import resolve_precision
from upt.engine.progress import Progress
from upt.engine.resume import check_same_run
from upt.engine.rundir import (
    attach_log_file,
    check_same_backbone,
    describe_run,
    eval_record_path,
    load_run,
    prepare_run_dir,
    read_run_config,
    resolve_device,
    write_config,
)
from upt.engine.train import seed_everything
from upt.errors import UptError
from upt.methods import build_method, get_method_class

log = logging.getLogger(__name__)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA max allocated, or the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare_data(cfg: RunConfig):
    """The run's splits: dataset, few-shot subset of (shots, seed), then base/new classes. A method
    that uses no labelled images (zero-shot) gets the evaluation split alone."""
    needs_train = get_method_class(cfg.method).needs_training_data
    splits = load_dataset(cfg.dataset, cfg.data_root, train=needs_train)
    if not needs_train:
        splits = splits.replace(train=[], val=[])
    elif cfg.shots > 0:
        splits = fewshot_splits(splits, cfg.shots, cfg.seed)
    if cfg.classes != "all":
        splits = base_new_split(splits, cfg.classes)
    if needs_train and not splits.train:
        raise UptError(f"Dataset {cfg.dataset} has no training images.")
    return splits


def train_run(cfg: RunConfig, out: str | Path, resume: bool = False, overwrite: bool = False) -> dict:
    """Train ``cfg.method`` and evaluate it on the test split; returns the results written.

    Everything that can be checked is checked before the run folder is touched: the config, that
    ``resume`` continues the same run, the data and its validation and test images (so
    ``overwrite`` never deletes a run for one that cannot start). With ``cfg.devices > 1`` (and not
    already under torchrun) this spawns that many data-parallel processes and returns rank 0's results.
    """
    given = cfg.dataset  # as typed (a relative folder:), for display; the config stores it resolved
    cfg = fill_defaults(cfg)
    require_reachable_weights(cfg.backbone, cfg.pretrained)  # offline: fail in seconds, before the data
    out = Path(out)
    if resume:
        check_same_run(out, cfg)
    spawn = cfg.devices > 1 and "WORLD_SIZE" not in os.environ
    device = None if spawn else dist.init_from_env()
    splits = prepare_data(cfg)
    splits.info["dataset_given"] = given
    if dist.is_main():
        check_images(splits.val + splits.test, "validation and test")
        prepare_run_dir(out, resume, overwrite)
    if spawn:
        dist.launch(cfg.devices, _spawned_train, cfg.to_dict(), str(out), resume)
        return read_json(out / "results.json")
    dist.barrier()
    handler = attach_log_file(out) if dist.is_main() else None
    try:
        return _train(cfg, out, resume, device, splits)
    finally:
        if handler is not None:
            logging.getLogger("upt").removeHandler(handler)
            handler.close()


def _spawned_train(cfg: dict, out: str, resume: bool) -> None:
    from upt.engine.config import from_dict

    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("upt").setLevel(logging.INFO)
    train_run(from_dict(cfg), out, resume=resume)  # the parent prepared (or cleared) the folder


def _train(cfg: RunConfig, out: Path, resume: bool, device: torch.device | None, splits=None) -> dict:
    device = device or resolve_device(cfg.device)
    main = dist.is_main()
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    seed_everything(cfg.seed)
    splits = splits if splits is not None else prepare_data(cfg)
    backbone = load_backbone(cfg.backbone, cfg.pretrained, device, quick_gelu=cfg.quick_gelu)
    if resume and (out / META_FILE).exists():
        check_same_backbone(read_json(out / META_FILE)["backbone"], backbone, out)
    precision = resolve_precision(cfg.precision, device)
    torch.manual_seed(cfg.seed)  # prompt initialisation
    method = build_method(cfg.method, backbone, splits.classnames, splits.template, cfg.method_config,
                          splits.ensemble_with_template)
    method.configure_compute(**cfg.compute.method_settings())
    precision.prepare(backbone, method)
    if main:
        write_config(out, cfg)
        write_json(out / META_FILE, describe_run(method, backbone, cfg, splits))
    log.info("%s on %s (%d classes, %d train images), backbone %s, %s, %s", cfg.method, cfg.dataset,
             len(splits.classnames), len(splits.train), cfg.backbone, device, precision.name)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    train_stats = fit(method, splits, cfg, precision, out, resume)
    if main:
        save_tensors(out / PROMPT_FILE, method.trainable_state_dict())

    with Progress(len(dist.shard(len(splits.test))), "eval", enabled=main) as bar:
        metrics = evaluate_split(method, splits.test, splits.classnames, cfg, precision, cfg.dataset, bar)
    seconds = train_stats.pop("train_seconds")
    images = train_stats.pop("train_images")
    results = _record(cfg, method, cfg.dataset, cfg.classes, splits, metrics)
    results["timing"].update(train_seconds=seconds, train_images_per_s=images / seconds if seconds > 0 else None)
    results.update(precision=precision.name, device=str(device), devices=dist.world_size(),
                   trainable_parameters=method.num_trainable(), fewshot=splits.info.get("fewshot"),
                   train=train_stats, git_revision=git_revision())
    if main:
        write_json(out / "results.json", results)
    dist.barrier()
    log.info("test accuracy %.2f%% (macro F1 %.2f) on %d images -> %s", results["accuracy"], results["macro_f1"],
             results["n_images"], out)
    return results


def _record(cfg: RunConfig, method, eval_dataset: str, classes: str, splits, metrics: dict) -> dict:
    """The fields every evaluation record has (``results.json`` and ``eval/*.json``)."""
    return {
        "method": cfg.method,
        "method_config": dataclasses.asdict(method.config),
        "dataset": cfg.dataset,
        "eval_dataset": eval_dataset,
        "protocol": cfg.protocol,
        "classes": classes,
        "split": "test",
        "shots": cfg.shots,
        "seed": cfg.seed,
        "backbone": cfg.backbone,
        "pretrained": cfg.pretrained,
        "split_info": {k: v for k, v in splits.info.items() if k != "fewshot"},
        **{k: metrics[k] for k in ("accuracy", "macro_f1", "per_class_accuracy", "n_images")},
        "timing": {"eval_images_per_s": metrics["eval_images_per_s"],
                   "peak_memory_mb": peak_memory_mb(method.backbone.device)},
        "versions": versions(),
    }


def eval_run(run_dir: str | Path, dataset: str | None = None, data_root: str | None = None,
             classes: str | None = None, device: str = "auto", backbone: str | None = None,
             pretrained: str | None = None, write: bool = True, out: str | Path | None = None) -> dict:
    """Evaluate a trained run on its own test split or another dataset's.

    With ``write``, the record goes to ``out`` or else ``RUN/eval/<dataset>-<classes>.json``; that
    place is checked writable before anything is evaluated (a read-only run folder needs ``out``).
    """

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    dataset = dataset or cfg.dataset
    classes = classes or cfg.classes
    record = eval_record_path(run_dir, dataset, classes, out) if write else None
    method, meta = load_run(run_dir, device, backbone, pretrained)
    splits = load_dataset(dataset, data_root if data_root is not None else cfg.data_root)
    if classes != "all":
        splits = base_new_split(splits, classes)
    if dataset == cfg.dataset and classes == cfg.classes:
        names, template = meta["classnames"], meta["template"]
        if list(splits.classnames) != names:
            raise UptError(f"The classes of {dataset} here differ from those recorded in {run_dir / META_FILE} "
                           f"({len(splits.classnames)} here, {len(names)} there); restore that file or the dataset.")
    else:
        names, template = splits.classnames, splits.template
    method.set_classnames(names, template, splits.ensemble_with_template)
    method.configure_compute(**cfg.compute.method_settings())
    try:
        precision = resolve_precision(cfg.precision, method.backbone.device)
    except UptError as exc:  # e.g. a GPU run's fp16 evaluated on a CPU
        precision = resolve_precision("auto", method.backbone.device)
        log.warning("%s Evaluating in %s instead.", exc, precision.name)
    precision.prepare(method.backbone, method)
    with Progress(len(splits.test), "eval") as bar:
        metrics = evaluate_split(method, splits.test, names, cfg, precision, canonical_dataset(dataset), bar)
    results = {**_record(cfg, method, dataset, classes, splits, metrics), "run": str(run_dir),
               "precision": precision.name, "device": str(method.backbone.device)}
    if record is not None:
        write_json(record, results)
    return results
