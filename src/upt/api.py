"""The Python entry points: configure, train and evaluate a run, and turn in-memory images into a
dataset, with the same resolution and run folders as the command line.

::

    import upt

    cfg = upt.run_config(method="upt", dataset="folder:photos", backbone="ViT-B-16", shots=16)
    results = upt.train(cfg, "runs/photos-upt")          # the results record (results.json)
    upt.evaluate("runs/photos-upt", dataset="folder:more-photos")
    upt.Predictor("runs/photos-upt").predict("new.jpg")
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from upt.engine.config import RunConfig
from upt.errors import UptError


def run_config(*, presets: Sequence[str | os.PathLike] = (), overrides: Sequence[str] = (),
               **settings: Any) -> RunConfig:
    """A run config resolved exactly as ``upt train`` resolves its flags.

    Settings left unset come from ``presets`` (YAML files or packaged preset names, in order), else the
    method's paper settings for the protocol (``configs/methods/METHOD.yaml``), else the protocol's
    preset, else the defaults of :class:`RunConfig`.

    Args:
        presets: what ``--config`` takes.
        overrides: what ``--set`` takes: ``["optim.lr=0.01", "method_config.n_t=8"]``.
        **settings: the ``upt train`` flags by name (``method``, ``dataset``, ``shots``, ``seed``,
            ``backbone``, ``pretrained``, ``classes``, ``protocol``, ``epochs``, ``batch_size``, ``lr``,
            ``max_steps``, ``workers``, ``device``, ``devices``, ``precision``, ``data_root``) or any
            top-level :class:`RunConfig` field, sections as mappings (``optim={"momentum": 0.8}``).

    Returns:
        The config; ``upt.engine.config.config_text(upt.engine.config.fill_defaults(cfg))`` is what
        ``--print-config`` prints.
    """
    from upt.engine.config import resolve, settings_layer

    return resolve(settings_layer(settings), [str(p) for p in presets], list(overrides))


def train(config: RunConfig | str | os.PathLike, out: str | os.PathLike | None = None, *,
          resume: bool = False, overwrite: bool = False) -> dict:
    """Train a run, evaluate it on its test split and write its run folder; returns the results record.

    Args:
        config: a :class:`RunConfig` (from :func:`run_config`), or a run YAML file as ``upt train
            --config`` takes it (a run folder's ``config.yaml``, a sweep's ``sweep-jobs/*.yaml``).
        out: the run folder (default ``runs/<dataset>-<method>-<K>shot-seed<S>``).
        resume: continue the run in ``out`` from its last checkpoint.
        overwrite: replace an existing run in ``out``.
    """
    from upt.engine import train_run
    from upt.engine.config import default_out

    cfg = config if isinstance(config, RunConfig) else run_config(presets=[config])
    return train_run(cfg, out if out is not None else default_out(cfg), resume=resume, overwrite=overwrite)


def evaluate(run: str | os.PathLike, dataset: str | None = None, *, classes: str | None = None,
             data_root: str | None = None, device: str = "auto", out: str | os.PathLike | None = None) -> dict:
    """Evaluate a trained run folder on its own test split or another dataset's, as ``upt eval`` does.

    Args:
        run: the run folder.
        dataset: a catalog name or ``folder:PATH`` (default: the run's own).
        classes: ``all``, ``base`` or ``new`` (default: the run's).
        data_root: where ``dataset`` lives (default: the run's).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        out: write the record here instead of ``RUN/eval/<dataset>-<classes>.json``.

    Returns:
        The evaluation record (accuracy, macro-F1, per-class accuracy, confusion, provenance).
    """
    from upt.engine import eval_run

    return eval_run(run, dataset, data_root, classes, device, out=out)


def list_methods() -> list[str]:
    """The registered method names (``upt list methods`` describes each)."""
    from upt.methods import REGISTRY

    return list(REGISTRY)


def image_folder(root: str | os.PathLike, classnames: Sequence[str], train: Iterable[tuple[Any, Any]],
                 test: Iterable[tuple[Any, Any]] | None = None,
                 val: Iterable[tuple[Any, Any]] | None = None) -> str:
    """Write labelled in-memory images as a dataset folder ``upt`` reads; returns ``"folder:ROOT"``.

    Each split is any iterable of ``(image, label)`` pairs: a torchvision-style dataset, a list, or
    ``zip(images, labels)`` over a tensor batch. An image is a PIL image, a numpy array (H×W×3,
    uint8 or float 0..1) or a torch tensor (3×H×W, uint8 or float 0..1), as :class:`upt.Predictor`
    takes them; a label is an index into ``classnames``. Images are stored as PNG under
    ``ROOT/<split>/<class name>/`` (with only ``train``: ``ROOT/<class name>/``, and the folder reader
    carves validation and test images from it; without ``val``, it carves validation from train).
    Class names become folder names, so they cannot contain ``/`` or start with ``.``.

    ``root`` must not exist yet or be empty: nothing is ever overwritten, and the folder appears only
    once every image is written (a bad item leaves nothing behind).
    """
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UptError(f"{root} already exists and is not an empty folder; choose a new folder for the images.")
    names = [str(c) for c in classnames]
    bad = [c for c in names if not c or "/" in c or os.sep in c or c.startswith(".")]
    if bad or len(set(names)) < len(names):
        raise UptError(f"Class names must be distinct folder names (no '/', not starting with '.'); got {bad or names}.")
    splits = {"train": train, "val": val, "test": test}
    given = {k: v for k, v in splits.items() if v is not None}
    partial = root.with_name(f".{root.name}.partial-{os.getpid()}")  # renamed into place when complete
    try:
        _write_splits(partial, names, given)
        if root.exists():
            root.rmdir()  # empty, checked above
        partial.rename(root)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    return f"folder:{root}"


def _write_splits(root: Path, names: list[str], given: dict[str, Iterable[tuple[Any, Any]]]) -> None:
    from upt.predict import as_pil_image

    for split, pairs in given.items():
        base = root / split if len(given) > 1 else root
        for dirname in names:
            (base / dirname).mkdir(parents=True, exist_ok=True)
        for i, pair in enumerate(pairs):
            try:
                image, label = pair
            except (TypeError, ValueError):
                raise UptError(f"{split} item {i} is not an (image, label) pair.") from None
            label = int(label)
            if not 0 <= label < len(names):
                raise UptError(f"{split} item {i} has label {label}, outside 0..{len(names) - 1}.")
            as_pil_image(image, i, f"{split} image").convert("RGB").save(base / names[label] / f"{i:06d}.png")
