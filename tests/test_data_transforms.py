"""Transforms: output shape, normalisation, RGB conversion; and the Dataset with its cache."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from open_clip.transform import PreprocessCfg
from PIL import Image

from datatools import write_image
from upt.data import TRANSFORMS, ImageDataset, Sample, build_transform
from upt.errors import UptError

PRE = SimpleNamespace(size=32, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0), interpolation="bicubic")


@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "CMYK"])
def test_every_transform_gives_normalised_rgb(name, mode):
    image = Image.new("RGB", (50, 40), (255, 0, 128)).convert(mode)
    x = build_transform(PRE, train=True, name=name)(image)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32


def test_normalisation_values():
    x = build_transform(PRE, train=False)(Image.new("RGB", (40, 60), (255, 0, 255)))
    assert torch.allclose(x[0], torch.full((32, 32), 1.0))  # (1 - 0.5) / 0.5
    assert torch.allclose(x[1], torch.full((32, 32), -1.0))  # (0 - 0.25) / 0.25
    assert torch.allclose(x[2], torch.full((32, 32), 1.0))  # (1 - 0) / 1


def test_defaults_and_eval_is_deterministic():
    train, evaluate = build_transform(PRE, train=True), build_transform(PRE, train=False)
    assert "RandomResizedCrop" in repr(train) and "scale=(0.08, 1.0)" in repr(train)
    assert "CenterCrop" in repr(evaluate) and "Random" not in repr(evaluate)
    image = Image.linear_gradient("L").resize((64, 48))
    assert torch.equal(evaluate(image), evaluate(image))


def test_tip_adapters_crop_samples_half_the_image_or_more():
    from torchvision import transforms as T

    tf = build_transform(PRE, train=True, name="random_resized_crop_0.5")
    crop, flip = tf.transforms[1], tf.transforms[2]
    assert isinstance(crop, T.RandomResizedCrop) and crop.scale == (0.5, 1.0) and crop.ratio == (3 / 4, 4 / 3)
    assert crop.interpolation == T.InterpolationMode.BICUBIC and isinstance(flip, T.RandomHorizontalFlip)
    default = build_transform(PRE, train=True).transforms[1]
    assert default.scale == (0.08, 1.0)


def test_accepts_open_clip_config_and_mappings():
    assert build_transform(PreprocessCfg(size=(24, 24)), train=False)(Image.new("RGB", (30, 30))).shape == (3, 24, 24)
    cfg = {"size": 16, "mean": (0, 0, 0), "std": (1, 1, 1), "interpolation": "bilinear"}
    assert build_transform(cfg, train=True)(Image.new("RGB", (30, 30))).shape == (3, 16, 16)


def test_bad_transform_inputs():
    with pytest.raises(UptError, match="Unknown transform 'center_cropp'. Did you mean 'center_crop'"):
        build_transform(PRE, train=False, name="center_cropp")
    with pytest.raises(UptError, match="Preprocessing config lacks 'std'"):
        build_transform({"size": 16, "mean": (0, 0, 0), "interpolation": "bicubic"}, train=False)
    with pytest.raises(UptError, match=r"Only square input sizes are supported, got \(16, 24\)"):
        build_transform({**vars(PRE), "size": (16, 24)}, train=False)


def test_dataset_items_and_cache(tmp_path):
    paths = [write_image(tmp_path / f"{i}.jpg", i) for i in range(3)]
    Image.new("RGB", (200, 100)).save(tmp_path / "big.png")
    samples = [Sample(str(p), i) for i, p in enumerate(paths)] + [Sample(str(tmp_path / "big.png"), 7)]
    ds = ImageDataset(samples, build_transform(PRE, train=False))
    x, label, index = ds[3]
    assert x.shape == (3, 32, 32) and label == 7 and index == 3 and len(ds) == 4
    cached = ImageDataset(samples, cache=True, cache_size=50).preload(workers=2)
    for p in paths:
        p.unlink()  # the cache answers without the files
    assert cached[0][0].size == (8, 8)  # small images are never enlarged
    assert cached[3][0].size == (100, 50) and cached[3][1] == 7
    with pytest.raises(UptError, match="preload\\(\\) needs ImageDataset\\(cache=True\\)"):
        ImageDataset(samples).preload()
