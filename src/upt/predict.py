"""Predict classes of new images with a trained run folder.

From Python::

    from upt import Predictor
    predictor = Predictor("runs/flowers-upt")
    for row in predictor.predict(["rose.jpg", "photos/"], topk=3):
        print(row["path"], row["top"][0])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch

from upt.data.base import is_image
from upt.data.walk import list_images
from upt.errors import UptError


def expand_paths(items: Iterable[str | Path]) -> list[str]:
    """Image files named directly, plus every image below named folders (sorted)."""
    out: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = [str(p / rel) for rel in list_images(p)]
            if not found:
                raise UptError(f"Folder {p} holds no images.")
            out.extend(found)
        elif p.is_file():
            if not is_image(p.name):
                raise UptError(f"{p} is not an image file (by its extension).")
            out.append(str(p))
        else:
            raise UptError(f"{p} does not exist.")
    return out


class Predictor:
    """A trained run folder, ready to classify images.

    Args:
        run_dir: the run folder (nothing else is needed).
        device: ``auto``, ``cpu``, ``cuda``...
        classnames: classify among these instead of the trained classes (open-vocabulary methods).
    """

    def __init__(self, run_dir: str | Path, device: str = "auto", classnames: Sequence[str] | None = None):
        from upt.data import build_transform
        from upt.engine.rundir import load_run

        self.method, self.meta = load_run(run_dir, device)
        if classnames:
            self.method.set_classnames(classnames)
        self.transform = build_transform(self.method.backbone.preprocess, train=False)

    @property
    def classnames(self) -> list[str]:
        return self.method.classnames

    @torch.no_grad()
    def predict(self, paths: Iterable[str | Path], topk: int = 5, batch_size: int = 32) -> Iterator[dict]:
        """Yield ``{"path", "top": [{"class", "probability"}, ...]}`` per image, best first."""
        from upt.data.images import load_image

        files = expand_paths(paths)
        k = max(1, min(topk, len(self.classnames)))
        device = self.method.backbone.device
        with self.method.cached_text():
            for s in range(0, len(files), batch_size):
                chunk = files[s : s + batch_size]
                images = torch.stack([self.transform(load_image(f)) for f in chunk]).to(device)
                probs = self.method(images).float().softmax(-1)
                values, indices = probs.topk(k, dim=-1)
                for f, v, i in zip(chunk, values.tolist(), indices.tolist(), strict=True):
                    yield {"path": f, "top": [{"class": self.classnames[j], "probability": round(p, 6)}
                                              for p, j in zip(v, i, strict=True)]}
