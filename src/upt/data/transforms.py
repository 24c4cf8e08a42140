"""Train and eval image transforms built from the backbone's preprocessing (size, mean, std, interpolation).

``random_resized_crop`` (train default) is CoOp's augmentation: RandomResizedCrop(scale 0.08-1) and
a horizontal flip. ``center_crop`` (eval default) is CLIP's own preprocessing: resize the short side,
centre crop. ``center_crop_flip`` is the deterministic-crop option for training with only a flip.
``random_resized_crop_0.5`` crops at scale 0.5-1 (then flips): Tip-Adapter's augmentation
(gaopengcuhk/Tip-Adapter @ d0e2d6f, ``main.py`` ``train_tranform``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from PIL import Image
from torchvision import transforms as T

from upt.data.images import ToRGB
from upt.errors import UptError, unknown_name

TransformName = Literal["random_resized_crop", "random_resized_crop_0.5", "center_crop", "center_crop_flip"]
TRANSFORMS: tuple[str, ...] = ("random_resized_crop", "random_resized_crop_0.5", "center_crop", "center_crop_flip")
_CROP_SCALE = {"random_resized_crop": (0.08, 1.0), "random_resized_crop_0.5": (0.5, 1.0)}
_INTERPOLATION = {
    "bicubic": T.InterpolationMode.BICUBIC,
    "bilinear": T.InterpolationMode.BILINEAR,
    "nearest": T.InterpolationMode.NEAREST,
}


def _get(preprocess: Any, key: str) -> Any:
    if isinstance(preprocess, Mapping):
        if key not in preprocess:
            raise UptError(f"Preprocessing config lacks '{key}'; it needs size, mean, std and interpolation.")
        return preprocess[key]
    if not hasattr(preprocess, key):
        raise UptError(f"Preprocessing config lacks '{key}'; it needs size, mean, std and interpolation.")
    return getattr(preprocess, key)


def _size(value: Any) -> int:
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise UptError(f"Only square input sizes are supported, got {tuple(value)}.")
        value = value[0]
    return int(value)


def _interpolation(value: Any) -> T.InterpolationMode:
    if isinstance(value, T.InterpolationMode):
        return value
    if str(value).lower() not in _INTERPOLATION:
        raise unknown_name("interpolation", str(value), _INTERPOLATION)
    return _INTERPOLATION[str(value).lower()]


def build_transform(preprocess: Any, train: bool, name: str | None = None) -> Callable[[Image.Image], torch.Tensor]:
    """Build the image transform for training or evaluation.

    Args:
        preprocess: Anything with ``size`` (int or square pair), ``mean``, ``std`` and
            ``interpolation`` ("bicubic"/"bilinear"), as attributes or mapping keys; open_clip's
            ``PreprocessCfg`` works.
        train: Training (default ``random_resized_crop``) or evaluation (default ``center_crop``).
        name: One of :data:`TRANSFORMS` to override the default.

    Returns:
        A callable from a PIL image to a normalised (3, size, size) float tensor.
    """
    name = name or ("random_resized_crop" if train else "center_crop")
    if name not in TRANSFORMS:
        raise unknown_name("transform", name, TRANSFORMS)
    size = _size(_get(preprocess, "size"))
    interp = _interpolation(_get(preprocess, "interpolation"))
    mean, std = tuple(_get(preprocess, "mean")), tuple(_get(preprocess, "std"))
    if len(mean) != 3 or len(std) != 3:
        raise UptError(f"Preprocessing mean and std need 3 values each, got {mean} and {std}.")
    if name in _CROP_SCALE:
        geometry = [T.RandomResizedCrop(size, scale=_CROP_SCALE[name], interpolation=interp), T.RandomHorizontalFlip()]
    else:
        geometry = [T.Resize(size, interpolation=interp), T.CenterCrop(size)]
        if name == "center_crop_flip":
            geometry.append(T.RandomHorizontalFlip())
    return T.Compose([ToRGB(), *geometry, T.ToTensor(), T.Normalize(mean, std)])
