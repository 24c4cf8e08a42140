"""A torch ``Dataset`` over samples, with an optional cache of decoded images.

Errors: decoding goes through :func:`upt.data.images.load_image`, so a bad file raises
:class:`~upt.data.images.ImageReadError` naming it, also from inside DataLoader workers.

Cache: few-shot sets are re-read every epoch, so ``ImageDataset(cache=True)`` keeps decoded images
at full resolution (random crops then see the original pixels, as in the reference code), up to a
memory budget (``cache_bytes``; images past it are read from disk each time). ``cache_size``
optionally shrinks cached images so the short side is that many pixels (never enlarged): faster,
but crops then come from a smaller image. Workers each hold their own cache; call
:meth:`ImageDataset.preload` before building the DataLoader so forked workers share it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from upt.data.base import Sample
from upt.data.images import load_image
from upt.errors import UptError


def _shrink(image: Image.Image, short_side: int | None) -> Image.Image:
    if short_side is None or min(image.size) <= short_side:
        return image
    w, h = image.size
    scale = short_side / min(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)


class ImageDataset(Dataset):
    """Samples plus a transform; ``dataset[i]`` is ``(transform(image), label, i)``.

    Args:
        samples: The (path, label) list.
        transform: Applied to the RGB PIL image; None returns the PIL image itself.
        cache: Keep decoded images in memory (for small sets read every epoch).
        cache_size: When caching, shrink images so the short side is this many pixels (keep it at
            or above the model's input size; None keeps full resolution).
        cache_bytes: Most decoded bytes (width × height × 3) kept; None: no limit.
    """

    def __init__(self, samples: Sequence[Sample], transform: Callable[[Image.Image], Any] | None = None,
                 cache: bool = False, cache_size: int | None = None, cache_bytes: int | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.cache = cache
        self.cache_size = cache_size
        self.cache_bytes = cache_bytes
        self._cache: dict[int, Image.Image] = {}
        self._cached_bytes = 0

    def _decode(self, index: int) -> Image.Image:
        return _shrink(load_image(self.samples[index].path), self.cache_size)

    def _keep(self, index: int, image: Image.Image) -> None:
        size = image.width * image.height * 3
        if self.cache_bytes is None or self._cached_bytes + size <= self.cache_bytes:
            self._cache[index] = image
            self._cached_bytes += size

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, index: int) -> Image.Image:
        """The decoded RGB image of sample ``index`` (from the cache when enabled)."""
        if self.cache:
            if index in self._cache:
                return self._cache[index]
            image = self._decode(index)
            self._keep(index, image)
            return image
        return load_image(self.samples[index].path)

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        image = self.image(index)
        return (self.transform(image) if self.transform else image), self.samples[index].label, index

    def preload(self, workers: int | None = None) -> ImageDataset:
        """Decode every image into the cache now (threads; PIL releases the GIL while decoding)."""
        if not self.cache:
            raise UptError("preload() needs ImageDataset(cache=True).")
        todo = [i for i in range(len(self)) if i not in self._cache]
        with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
            for i, image in zip(todo, pool.map(self._decode, todo), strict=True):
                self._keep(i, image)
        return self
