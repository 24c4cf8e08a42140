"""The toy world: procedurally drawn, captioned images for pretraining and testing a small CLIP.

Every image is one shape with six attributes: shape, colour, size, position, fill texture and
background. Each attribute has a small named vocabulary, so a caption can say exactly what is drawn
("a photo of a small red star on a striped background"). Images and captions are pure functions of
(seed, index): parameters come from ``random.Random`` seeded with a string, and only its
``random()`` stream is used, which Python keeps stable across versions.

A :class:`Scene` is the attribute record; :func:`render` draws it; :func:`caption` describes it
with one of a few templates; :func:`sample_scene` draws the attributes, optionally constrained
(``fixed``) or keeping a held-out set of (shape, colour) pairs out (pretraining never sees them).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from upt.data.shapes import SHAPES, _outline

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40), "green": (40, 170, 60), "blue": (45, 85, 225), "yellow": (235, 205, 40),
    "purple": (135, 55, 180), "orange": (240, 135, 30), "white": (240, 240, 240), "black": (25, 25, 25),
}
SIZES = ("small", "large")
POSITIONS = ("on the left", "on the right", "at the top", "at the bottom", "in the middle")
TEXTURES = ("plain", "striped", "dotted")
BACKGROUNDS = ("plain", "striped", "dotted", "gradient")
ATTRIBUTES = ("shape", "colour", "size", "position", "texture", "background")

TEMPLATES = (
    "a photo of a {size} {colour} {shape} on a {background} background.",
    "a {colour} {shape}.",
    "a photo of a {shape}.",
    "a {size} {shape} {position}.",
    "a {texture} {colour} {shape}.",
    "a drawing of a {shape} on a {background} background.",
    "a {shape} {position}.",
    "a {size} {texture} {shape}.",
    "a {colour} {shape} {position} on a {background} background.",
)


@dataclass(frozen=True)
class Scene:
    """What one image shows (names from the vocabularies above), plus its drawing details."""

    shape: str
    colour: str
    size: str
    position: str
    texture: str
    background: str
    background_colour: str
    rotation: float
    jitter: tuple[int, int, int]


def _pick(rng: random.Random, options):
    return options[int(rng.random() * len(options))]


def sample_scene(rng: random.Random, fixed: Mapping[str, str] | None = None,
                 held_out: frozenset[tuple[str, str]] = frozenset()) -> Scene:
    """Draw a scene's attributes; ``fixed`` pins some; (shape, colour) pairs in ``held_out`` are redrawn."""
    fixed = dict(fixed or {})
    while True:
        values = {
            "shape": _pick(rng, SHAPES), "colour": _pick(rng, tuple(COLOURS)), "size": _pick(rng, SIZES),
            "position": _pick(rng, POSITIONS), "texture": _pick(rng, TEXTURES), "background": _pick(rng, BACKGROUNDS),
        }
        values.update(fixed)
        bg = _pick(rng, tuple(c for c in COLOURS if c != values["colour"]))
        scene = Scene(**values, background_colour=bg, rotation=2 * math.pi * rng.random(),
                      jitter=tuple(int(40 * rng.random()) - 20 for _ in range(3)))
        if (scene.shape, scene.colour) not in held_out:
            return scene


def caption(scene: Scene, rng: random.Random) -> str:
    """One caption of ``scene`` from a random template."""
    return _pick(rng, TEMPLATES).format(**{a: getattr(scene, a) for a in ATTRIBUTES})


def _rgb(name: str, jitter: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    return np.clip(np.array(COLOURS[name]) + np.array(jitter), 0, 255).astype(np.float64)


def _pattern(kind: str, n: int, phase: float) -> np.ndarray:
    """A (n, n) mask in [0, 1]: 1 where the second colour shows."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    if kind == "striped":
        return (np.sin(2 * math.pi * (6 * (xx + yy) + phase)) > 0).astype(np.float64)
    if kind == "dotted":
        return ((np.sin(2 * math.pi * 5 * xx + phase) * np.sin(2 * math.pi * 5 * yy)) > 0.5).astype(np.float64)
    if kind == "gradient":
        return np.clip(math.cos(phase) * xx + math.sin(phase) * yy + 0.3, 0, 1)
    return np.zeros((n, n))


def render(scene: Scene, size: int = 32, supersample: int = 4) -> Image.Image:
    """Draw ``scene`` as an RGB image of ``size`` × ``size`` (drawn larger, then box-downsampled)."""
    big = size * supersample
    bg_a, bg_b = _rgb(scene.background_colour), _rgb(scene.background_colour) * 0.45 + 120
    mask = _pattern(scene.background, big, scene.rotation)[..., None]
    canvas = bg_a * (1 - mask) + bg_b * mask
    radius = big * (0.22 + 0.06 * (scene.jitter[0] + 20) / 40 if scene.size == "small"
                    else 0.34 + 0.09 * (scene.jitter[1] + 20) / 40)
    margin = radius * 1.05
    centre = {"on the left": (margin, big / 2), "on the right": (big - margin, big / 2),
              "at the top": (big / 2, margin), "at the bottom": (big / 2, big - margin),
              "in the middle": (big / 2, big / 2)}[scene.position]
    cos, sin = math.cos(scene.rotation), math.sin(scene.rotation)
    points = [(centre[0] + radius * (x * cos - y * sin), centre[1] + radius * (x * sin + y * cos))
              for x, y in _outline(scene.shape)]
    shape_mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(shape_mask).polygon(points, fill=255)
    inside = (np.asarray(shape_mask, dtype=np.float64) / 255)[..., None]
    fg = _rgb(scene.colour, scene.jitter)
    texture = _pattern(scene.texture, big, scene.rotation + 1.0)[..., None]
    fill = fg * (1 - texture) + (fg * 0.35 + 150) * texture
    pixels = canvas * (1 - inside) + fill * inside
    return Image.fromarray(pixels.round().clip(0, 255).astype(np.uint8), "RGB").resize(
        (size, size), Image.Resampling.BOX)


def scene_at(seed: int, index: int, fixed: Mapping[str, str] | None = None,
             held_out: frozenset[tuple[str, str]] = frozenset()) -> Scene:
    """The ``index``-th scene of stream ``seed`` (a pure function of its arguments)."""
    key = ",".join(f"{k}={v}" for k, v in sorted((fixed or {}).items()))
    return sample_scene(random.Random(f"upt-toy/{seed}/{index}/{key}"), fixed, held_out)
