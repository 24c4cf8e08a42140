"""Toy classification tasks drawn from the toy world, as image folders ``upt`` reads with ``folder:``.

Each task names its classes by one attribute and lets every other attribute vary freely, with a
seed the pretraining never used (it drew seed 0), so its images are new to the toy CLIP:

- ``shapes``: the six shapes (``circle`` ... ``triangle``);
- ``backgrounds``: the background pattern (``plain_background`` ... ``gradient_background``);
- ``textures``: the shape's fill (``plain_shape``, ``striped_shape``, ``dotted_shape``);
- ``colours``: the shape's colour (``red`` ... ``black``; the background is always another colour).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from upt.errors import unknown_name
from upt.toy.world import BACKGROUNDS, COLOURS, SHAPES, TEXTURES, render, scene_at

TASKS: dict[str, tuple[str, tuple[str, ...], str]] = {  # name -> (attribute, values, folder name)
    "shapes": ("shape", SHAPES, "{}"),
    "backgrounds": ("background", BACKGROUNDS, "{}_background"),
    "textures": ("texture", TEXTURES, "{}_shape"),
    "colours": ("colour", tuple(COLOURS), "{}"),
}


def _drawn(task: str, per_class: int, seed: int, size: int) -> Iterator[tuple[int, int, Image.Image]]:
    """(label, index within the class, image) of every image of ``task``, class by class."""
    if task not in TASKS:
        raise unknown_name("toy task", task, TASKS)
    attribute, values, _ = TASKS[task]
    for label, value in enumerate(values):
        for i in range(per_class):
            yield label, i, render(scene_at(seed, i, fixed={attribute: value}), size)


def classnames(task: str) -> list[str]:
    """The class names of ``task`` in label order (as folders: ``striped_background``)."""
    if task not in TASKS:
        raise unknown_name("toy task", task, TASKS)
    _, values, folder = TASKS[task]
    return [folder.format(v) for v in values]


def make_task(root: str | Path, task: str, per_class: int = 60, seed: int = 11, size: int = 32) -> Path:
    """Draw ``task`` into ``root/<class>/<index>.png``; the same arguments give the same pixels."""
    names, root = classnames(task), Path(root)
    for label, i, image in _drawn(task, per_class, seed, size):
        (root / names[label]).mkdir(parents=True, exist_ok=True)
        image.save(root / names[label] / f"{i:03d}.png")
    return root


def draw_task(task: str, per_class: int = 60, seed: int = 11, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``task`` in memory: uint8 images (N×size×size×3) and their labels (N), class by class; the
    same pixels :func:`make_task` writes. :func:`classnames` gives the names of the labels."""
    drawn = list(_drawn(task, per_class, seed, size))
    return (np.stack([np.asarray(image) for _, _, image in drawn]),
            np.array([label for label, _, _ in drawn], dtype=np.int64))
