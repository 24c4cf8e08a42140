"""Decoding images with errors a person can act on, and checking many images at once.

Bad images: decoding raises :class:`ImageReadError` (a :class:`UptError`) naming the file. A
DataLoader worker re-raises an exception as ``type(exc)(formatted traceback)``;
:class:`ImageReadError` recognises that text and keeps only its own sentence, so the CLI still prints
one line. For small sets (few-shot train/val) call :func:`verify_images` first to name every bad file
at once before training starts. No torch here: ``upt data check`` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from upt.data.base import Sample
from upt.errors import UptError

_MARKER = "ImageReadError: "


class ToRGB:
    """Convert any PIL image to 8-bit RGB by its real value range.

    Pillow's own ``convert("RGB")`` clips high-bit-depth greyscale to 0..255, so a 16-bit photo turns
    all white (and a 0..1 float image all black). Those modes are scaled here instead:

    - ``I;16``, ``I;16B``, ``I;16L``, ``I;16N`` (16-bit PNG/TIFF): 0..65535 -> 0..255 (divide by 257).
    - ``I`` (32-bit integer): values within 0..65535 are read as 16-bit, as above (how 16-bit files
      reach this mode); any other range is stretched from the image's own min..max.
    - ``F`` (32-bit float): 0..1 when all values lie in it, else stretched from the image's own
      min..max. A constant image outside 0..1 becomes black, and so do NaN pixels.

    Every other mode (1, L, LA, P with or without transparency, RGBA, CMYK, YCbCr, ...) goes through
    Pillow's conversion; alpha is dropped.
    """

    def __call__(self, image: Image.Image) -> Image.Image:
        if image.mode == "RGB":
            return image
        if image.mode.startswith("I") or image.mode == "F":
            return _grey_to_rgb(image)
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")  # convert("RGB") on such palettes warns and can misread alpha
        return image.convert("RGB")

    def __repr__(self) -> str:
        return "ToRGB()"


def _grey_to_rgb(image: Image.Image) -> Image.Image:
    """A high-bit-depth greyscale image (modes ``I;16*``, ``I``, ``F``) as 8-bit RGB, see :class:`ToRGB`."""
    values = np.asarray(image, dtype=np.float32)
    finite = values[np.isfinite(values)]  # a float image may hold NaN or inf: they do not set the range
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if image.mode == "F" and 0.0 <= lo and hi <= 1.0:
        lo, hi = 0.0, 1.0
    elif image.mode != "F" and (image.mode != "I" or (0 <= lo and hi <= 65535)):
        lo, hi = 0.0, 65535.0
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    grey = np.nan_to_num(np.floor((values - lo) * scale + 0.5), nan=0.0).clip(0, 255).astype(np.uint8)  # half up
    return Image.fromarray(grey, "L").convert("RGB")


_to_rgb = ToRGB()


class ImageReadError(UptError):
    """An image that cannot be decoded; the message names the file."""

    def __init__(self, message: str) -> None:
        if "Traceback" in message and _MARKER in message:  # re-raised by a DataLoader worker
            message = message.rsplit(_MARKER, 1)[1].strip()
        super().__init__(message)


def load_image(path: str) -> Image.Image:
    """Decode an image fully and convert it to RGB.

    Raises:
        ImageReadError: Missing, unreadable, corrupt or truncated file.
    """
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later inside a transform
            return _to_rgb(image)
    except FileNotFoundError:
        raise ImageReadError(f"Image {path} does not exist; restore it or re-check the dataset with `upt data check`.") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ImageReadError(f"Image {path} cannot be read ({reason}); replace or delete the file.") from None


def _check_one(path: str) -> tuple[str, str] | None:
    try:
        load_image(path)
    except ImageReadError as exc:
        return path, str(exc)
    return None


def verify_images(paths: Iterable[str] | Iterable[Sample], workers: int | None = None,
                  raise_error: bool = False) -> list[tuple[str, str]]:
    """Decode every image and report the ones that fail.

    Args:
        paths: Paths or samples.
        workers: Decoding threads (default: up to 8).
        raise_error: Raise one :class:`ImageReadError` naming the bad files instead of returning them.

    Returns:
        (path, message) for each unreadable image, in input order.
    """
    unique = list(dict.fromkeys(p.path if isinstance(p, Sample) else str(p) for p in paths))
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        bad = [r for r in pool.map(_check_one, unique) if r is not None]
    if bad and raise_error:
        if len(bad) == 1:
            raise ImageReadError(bad[0][1])
        names = ", ".join(p for p, _ in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ImageReadError(f"{len(bad)} images cannot be read: {names}{more}; replace or delete them.")
    return bad
