"""Predict classes of new images with a trained run folder.

From Python::

    from upt import Predictor
    predictor = Predictor("runs/flowers-upt")
    for row in predictor.predict(["rose.jpg", "photos/"], topk=3):
        print(row["path"], row["top"][0])

Besides paths and folders, ``predict`` takes images already in memory, as ``transformers`` pipelines
do: PIL images, numpy arrays (H×W×3 or H×W, uint8 0..255 or float 0..1; channels last, a leading
batch axis allowed), torch tensors (3×H×W or H×W, uint8 or float 0..1; channels first, a leading
batch axis allowed), or a list mixing any of these. Every image goes through the same preprocessing
as an image file: 8-bit RGB, then the run's evaluation transform. Rows of in-memory images carry
``"input": i``, the image's position in what was passed (a batch counts one position per image),
instead of ``"path"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from upt.data.base import is_image
from upt.data.walk import list_images
from upt.errors import UptError

ImageInput = str | Path | Image.Image | np.ndarray | torch.Tensor
ErrorPolicy = Literal["raise", "skip", "report"]
ERROR_POLICIES = ("raise", "skip", "report")
_ACCEPTED = "image paths, folders, PIL images, numpy arrays or torch tensors"


def _expand_path(item: str | Path) -> list[str]:
    """The image file ``item`` names, or every image below the folder it names (sorted)."""
    p = Path(item)
    if p.is_dir():
        found = [str(p / rel) for rel in list_images(p)]
        if not found:
            raise UptError(f"Folder {p} holds no images.")
        return found
    if p.is_file():
        if not is_image(p.name):
            raise UptError(f"{p} is not an image file (by its extension).")
        return [str(p)]
    raise UptError(f"{p} does not exist.")


def _shape(x: np.ndarray | torch.Tensor) -> str:
    return "×".join(map(str, x.shape))


def _pixels(a: np.ndarray, where: str) -> np.ndarray:
    """``a`` as uint8 pixels: uint8 passes, float 0..1 is scaled (half up, as 16-bit files are)."""
    if a.dtype == np.uint8:
        return a
    if not np.issubdtype(a.dtype, np.floating):
        raise UptError(f"{where} has dtype {a.dtype}; pass uint8 pixels (0..255) or float pixels (0..1).")
    a = a.astype(np.float32)
    if a.size and not (np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0):
        raise UptError(f"{where} is a float image with values from {np.nanmin(a):.3g} to {np.nanmax(a):.3g}; "
                       "float pixels must lie in 0..1 (raw, not normalised), or pass uint8 0..255.")
    return np.floor(a * 255.0 + 0.5).astype(np.uint8)


def _array_image(a: np.ndarray, where: str) -> Image.Image:
    """One channels-last image array (H×W, H×W×1, H×W×3 or H×W×4) as a PIL image."""
    if a.ndim == 3 and a.shape[-1] not in (1, 3, 4) and a.shape[0] in (1, 3):
        raise UptError(f"{where} has shape {_shape(a)}, channels first; numpy images are "
                       "channels last (H×W×3): transpose it, or pass it as a torch tensor.")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
        raise UptError(f"{where} has shape {_shape(a)}; an image array is H×W×3, H×W×4 "
                       "or H×W (greyscale), or N×H×W×3 for a batch.")
    if 0 in a.shape:
        raise UptError(f"{where} is empty (shape {_shape(a)}).")
    a = _pixels(a, where)
    a = a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a
    return Image.fromarray(np.ascontiguousarray(a))  # uint8 H×W -> L, H×W×3 -> RGB, H×W×4 -> RGBA


def _tensor_image(t: torch.Tensor, where: str) -> Image.Image:
    """One channels-first image tensor (3×H×W, 1×H×W, 4×H×W or H×W) as a PIL image."""
    if t.dim() == 3 and t.shape[0] not in (1, 3, 4) and t.shape[-1] in (1, 3):
        raise UptError(f"{where} has shape {_shape(t)}, channels last; torch images are "
                       "channels first (3×H×W): permute it, or pass it as a numpy array.")
    if t.dim() not in (2, 3) or (t.dim() == 3 and t.shape[0] not in (1, 3, 4)):
        raise UptError(f"{where} has shape {_shape(t)}; an image tensor is 3×H×W or H×W "
                       "(greyscale), or N×3×H×W for a batch.")
    t = t.detach().cpu()
    t = t.float() if t.is_floating_point() else t
    a = t.numpy()
    return _array_image(a if a.ndim == 2 else np.moveaxis(a, 0, -1), where)


def _unbatch(x: object, position: int) -> list[tuple[int, object]]:
    """(position, image) for ``x``: a 4-D array or tensor is a batch of images, one position each."""
    if isinstance(x, np.ndarray | torch.Tensor) and x.ndim == 4:
        return [(position + j, x[j]) for j in range(x.shape[0])]
    return [(position, x)]


def as_pil_image(x: object, position: int, what: str = "Input") -> Image.Image:
    """An in-memory image (PIL, numpy array, torch tensor; see the module docstring) as a PIL image, or
    the UptError that says what is accepted, naming it ``f"{what} {position}"``."""
    where = f"{what} {position}"
    if isinstance(x, Image.Image):
        return x
    if isinstance(x, np.ndarray):
        return _array_image(x, where)
    if isinstance(x, torch.Tensor):
        return _tensor_image(x, where)
    raise UptError(f"{where} is of type {type(x).__name__}, which cannot be classified; pass {_ACCEPTED}.")


class Predictor:
    """A trained run folder, ready to classify images.

    Args:
        run_dir: the run folder (nothing else is needed), or ``hf-hub:user/name`` for one shared on the
            Hugging Face Hub (see :mod:`upt.hub`).
        device: ``auto``, ``cpu``, ``cuda``...
        classnames: classify among these instead of the trained classes (open-vocabulary methods).
    """

    def __init__(self, run_dir: str | Path, device: str = "auto", classnames: Sequence[str] | None = None):
        from upt.data import build_transform
        from upt.engine.rundir import load_run, read_run_config
        from upt.hub import resolve_run

        run_dir = resolve_run(run_dir)
        cfg = read_run_config(Path(run_dir))  # first, as `upt eval` reads it: the same error for a damaged run
        self.method, self.meta = load_run(run_dir, device)
        if classnames:
            self.method.set_classnames(classnames)
        # The run's own evaluation transform, as `upt eval` applies it to test images.
        self.transform = build_transform(self.method.backbone.preprocess, train=False,
                                         name=cfg.data.eval_transform)

    @property
    def classnames(self) -> list[str]:
        return self.method.classnames

    @torch.no_grad()
    def predict(self, inputs: ImageInput | Iterable[ImageInput], topk: int = 5, batch_size: int = 32,
                errors: ErrorPolicy = "raise") -> Iterator[dict]:
        """Yield ``{"path" or "input", "top": [{"class", "probability"}, ...]}`` per image, best first.

        Args:
            inputs: one image or several: see the module docstring for what is accepted.
            topk: classes per row (at most the number of classes).
            batch_size: images per forward pass.
            errors: what an image that cannot be read (a missing or corrupt file, a folder without
                images) does. ``raise``: stop with its UptError; ``skip``: leave it out; ``report``:
                yield ``{"path": ..., "error": "<one sentence>"}`` in its place. An unsupported
                in-memory input always raises, before any row is yielded.
        """
        if errors not in ERROR_POLICIES:
            raise UptError(f"Unknown errors policy '{errors}'; choose raise, skip or report.")
        if batch_size < 1:
            raise UptError(f"batch_size must be at least 1, got {batch_size}.")
        items = self._items(inputs, errors)
        k = max(1, min(topk, len(self.classnames)))
        with self.method.cached_text():
            for s in range(0, len(items), batch_size):
                yield from self._predict_chunk(items[s : s + batch_size], k, errors)

    def _items(self, inputs: ImageInput | Iterable[ImageInput], errors: ErrorPolicy) -> list[tuple[dict, object]]:
        """``(key, source)`` per image, in order: a path to read, a PIL image, or the UptError of a path
        that names no image (``skip``/``report``; ``raise`` raises it here, before any row)."""
        single = isinstance(inputs, str | Path | Image.Image | np.ndarray | torch.Tensor)
        given = [inputs] if single else inputs
        if not isinstance(given, Iterable):
            raise UptError(f"Cannot classify an object of type {type(inputs).__name__}; pass {_ACCEPTED}, "
                           "or a list of them.")
        items: list[tuple[dict, object]] = []
        position = 0
        for x in given:
            if isinstance(x, str | Path):
                items.extend(self._path_items(x, errors))
                position += 1
                continue
            batch = _unbatch(x, position)
            items.extend(({"input": i}, as_pil_image(img, i)) for i, img in batch)
            position += len(batch)
        return items

    @staticmethod
    def _path_items(path: str | Path, errors: ErrorPolicy) -> list[tuple[dict, object]]:
        """The images a path names (see :meth:`_items`)."""
        try:
            return [({"path": f}, f) for f in _expand_path(path)]
        except UptError as exc:
            if errors == "raise":
                raise
            return [({"path": str(path)}, exc)]

    def _predict_chunk(self, chunk: list[tuple[dict, object]], k: int, errors: ErrorPolicy) -> Iterator[dict]:
        """Rows of one chunk in input order: top-k for readable images, errors as ``errors`` says."""
        from upt.data.images import load_image

        loaded: list[torch.Tensor] = []
        failed: dict[int, str] = {}
        for n, (_, source) in enumerate(chunk):
            try:
                if isinstance(source, UptError):  # a path that named no image
                    raise source
                loaded.append(self.transform(load_image(source) if isinstance(source, str) else source))
            except UptError as exc:  # ImageReadError included
                if errors == "raise":
                    raise
                failed[n] = str(exc)
        tops = iter(self._top(torch.stack(loaded), k) if loaded else [])
        for n, (key, _) in enumerate(chunk):
            if n not in failed:
                yield {**key, "top": next(tops)}
            elif errors == "report":
                yield {**key, "error": failed[n]}

    def _top(self, images: torch.Tensor, k: int) -> list[list[dict]]:
        """The ``k`` most probable classes of each image (B, 3, S, S), best first."""
        probs = self.method(images.to(self.method.backbone.device)).float().softmax(-1)
        values, indices = probs.topk(k, dim=-1)
        return [[{"class": self.classnames[j], "probability": round(p, 6)} for p, j in zip(v, i, strict=True)]
                for v, i in zip(values.tolist(), indices.tolist(), strict=True)]
