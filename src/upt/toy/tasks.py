"""Toy classification tasks drawn from the toy world, as image folders ``upt`` reads with ``folder:``.

Each task names its classes by one attribute and lets every other attribute vary freely, with a
seed the pretraining never used (it drew seed 0), so its images are new to the toy CLIP:

- ``shapes``: the six shapes (``circle`` ... ``triangle``);
- ``backgrounds``: the background pattern (``plain_background`` ... ``gradient_background``);
- ``textures``: the shape's fill (``plain_shape``, ``striped_shape``, ``dotted_shape``);
- ``colours``: the shape's colour (``red`` ... ``black``; the background is always another colour).
"""

from __future__ import annotations

from pathlib import Path

from upt.errors import unknown_name
from upt.toy.world import BACKGROUNDS, COLOURS, SHAPES, TEXTURES, render, scene_at

TASKS: dict[str, tuple[str, tuple[str, ...], str]] = {  # name -> (attribute, values, folder name)
    "shapes": ("shape", SHAPES, "{}"),
    "backgrounds": ("background", BACKGROUNDS, "{}_background"),
    "textures": ("texture", TEXTURES, "{}_shape"),
    "colours": ("colour", tuple(COLOURS), "{}"),
}


def make_task(root: str | Path, task: str, per_class: int = 60, seed: int = 11, size: int = 32) -> Path:
    """Draw ``task`` into ``root/<class>/<index>.png``; the same arguments give the same pixels."""
    if task not in TASKS:
        raise unknown_name("toy task", task, TASKS)
    attribute, values, folder = TASKS[task]
    root = Path(root)
    for value in values:
        out = root / folder.format(value)
        out.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            render(scene_at(seed, i, fixed={attribute: value}), size).save(out / f"{i:03d}.png")
    return root
