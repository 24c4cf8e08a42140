"""A synthetic dataset of coloured shapes, drawn on the fly, for a quick start without any download.

Six classes with names CLIP knows (circle, square, triangle, star, cross, heart), each drawn filled
in a random colour, size, position and rotation on a two-colour gradient background. Images are a
pure function of (class, index, seed): parameters come from ``random.Random`` seeded with a string
and only its ``random()`` stream is used, which Python keeps stable across versions.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

SHAPES: tuple[str, ...] = ("circle", "cross", "heart", "square", "star", "triangle")  # label order (sorted)
DEFAULT_PER_CLASS = 60
DEFAULT_SIZE = 64
_SUPERSAMPLE = 2  # draw at 2x and downsample: smooth edges at a small cost


def _outline(shape: str) -> list[tuple[float, float]]:
    """The shape's outline as points on roughly the unit circle, centred on the origin."""
    if shape == "circle":
        return [(math.cos(t), math.sin(t)) for t in (2 * math.pi * i / 48 for i in range(48))]
    if shape == "square":
        return [(-0.75, -0.75), (0.75, -0.75), (0.75, 0.75), (-0.75, 0.75)]
    if shape == "triangle":
        return [(math.cos(t), math.sin(t)) for t in (-math.pi / 2 + 2 * math.pi * i / 3 for i in range(3))]
    if shape == "star":
        return [((1.0 if i % 2 == 0 else 0.42) * math.cos(t), (1.0 if i % 2 == 0 else 0.42) * math.sin(t))
                for i, t in enumerate(-math.pi / 2 + math.pi * i / 5 for i in range(10))]
    if shape == "cross":
        a, b = 0.28, 0.9
        return [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a),
                (-b, -a), (-a, -a)]
    if shape == "heart":
        ts = (2 * math.pi * i / 64 for i in range(64))
        return [(16 * math.sin(t) ** 3 / 17, -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t)
                                                - math.cos(4 * t)) / 17 - 0.1) for t in ts]
    raise ValueError(f"unknown shape {shape!r}")


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return tuple(int(rng.random() * 256) for _ in range(3))  # type: ignore[return-value]


def _far(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) > 120**2


def draw_shape(shape: str, index: int, seed: int = 0, size: int = DEFAULT_SIZE) -> Image.Image:
    """Draw one image of ``shape``; the same (shape, index, seed, size) always gives the same pixels.

    Args:
        shape: One of :data:`SHAPES`.
        index: Image number within the class.
        seed: Dataset seed.
        size: Output side in pixels.

    Returns:
        An RGB image of ``size`` x ``size``.
    """
    rng = random.Random(f"upt-shapes/{seed}/{shape}/{index}")
    bg_a, bg_b = _colour(rng), _colour(rng)
    fg = _colour(rng)
    while not (_far(fg, bg_a) and _far(fg, bg_b)):  # keep the shape visible against its background
        fg = _colour(rng)
    big = size * _SUPERSAMPLE
    angle = 2 * math.pi * rng.random()
    ramp = np.linspace(0.0, 1.0, big)[:, None]
    ramp = math.cos(angle) * ramp + math.sin(angle) * ramp.T  # gradient in a random direction
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    pixels = np.array(bg_a)[None, None, :] * (1 - ramp[..., None]) + np.array(bg_b)[None, None, :] * ramp[..., None]
    image = Image.fromarray(pixels.round().astype(np.uint8), "RGB")
    radius = big * (0.2 + 0.22 * rng.random())
    cx = radius + (big - 2 * radius) * rng.random()
    cy = radius + (big - 2 * radius) * rng.random()
    rot = 2 * math.pi * rng.random()
    cos, sin = math.cos(rot), math.sin(rot)
    points = [(cx + radius * (x * cos - y * sin), cy + radius * (x * sin + y * cos)) for x, y in _outline(shape)]
    ImageDraw.Draw(image).polygon(points, fill=fg)
    return image.resize((size, size), Image.Resampling.BOX)


def make_shapes(root: str | os.PathLike, per_class: int = DEFAULT_PER_CLASS, seed: int = 0,
                size: int = DEFAULT_SIZE) -> Path:
    """Write the shapes dataset as ``root/<shape>/<shape>_<index>.png``.

    A new folder is written beside ``root`` and renamed into place, so an interrupted run never
    leaves a half-written dataset that a later run would read.

    Args:
        root: Output folder (created; existing files of the same names are overwritten).
        per_class: Images per class.
        seed: Dataset seed; 0 is the catalog's ``shapes``.
        size: Image side in pixels.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root).expanduser().absolute()
    fresh = not root.exists()
    out = root.with_name(f".{root.name}.tmp-{os.getpid()}") if fresh else root
    out.mkdir(parents=True, exist_ok=True)
    try:
        for shape in SHAPES:
            (out / shape).mkdir(exist_ok=True)
            for i in range(per_class):
                draw_shape(shape, i, seed, size).save(out / shape / f"{shape}_{i:04d}.png", optimize=False)
        if fresh:
            out.rename(root)
    finally:
        if fresh and out.exists():
            shutil.rmtree(out, ignore_errors=True)
    logger.info("Wrote %d shapes images (%d classes) to %s.", per_class * len(SHAPES), len(SHAPES), root)
    return root
