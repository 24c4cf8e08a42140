"""Real photographs from ../shared/data through the DTD reader and ``folder:`` (skipped when absent)."""

from __future__ import annotations

from collections import Counter

import torch
from open_clip.transform import PreprocessCfg

from datatools import shared_data
from upt.data import ImageDataset, build_transform, fewshot_splits, load_dataset, verify_images


def test_dtd10_through_the_dtd_reader():
    splits = load_dataset("dtd", shared_data("dtd10"))
    assert splits.num_classes == 10 and splits.classnames[0] == "banded" and splits.classnames[-1] == "crystalline"
    assert splits.counts() == {"train": 160, "val": 40, "test": 200}
    assert splits.info["split_source"] == "split_zhou_DescribableTextures.json" and splits.info["official_split"]
    assert splits.prompts()[0] == "banded texture."
    few = fewshot_splits(splits, 4, seed=1)
    assert Counter(s.label for s in few.train) == dict.fromkeys(range(10), 4)
    assert not verify_images(few.train)
    x, y, _ = ImageDataset(few.train, build_transform(PreprocessCfg(size=32), train=True))[0]
    assert x.shape == (3, 32, 32) and y == few.train[0].label and torch.isfinite(x).all()


def test_flowers5_class_folders():
    splits = load_dataset(f"folder:{shared_data('flowers5')}")
    assert splits.classnames == ["daisy", "dandelion", "rose", "sunflower", "tulip"]
    counts = splits.counts()
    assert sum(counts.values()) == 300 and counts == {"train": 150, "val": 60, "test": 90}
    assert splits.template == "a photo of a {}."


def test_cifar10_train_test_folders():
    splits = load_dataset(f"folder:{shared_data('cifar10')}")
    assert splits.classnames[:3] == ["airplane", "automobile", "bird"] and splits.num_classes == 10
    assert splits.counts() == {"train": 400, "val": 100, "test": 500}
    assert all("/train/" in s.path for s in splits.val) and all("/test/" in s.path for s in splits.test)
