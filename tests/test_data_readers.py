"""Every catalog dataset read from a miniature tree in its exact CoOp layout, plus the split fallbacks."""

from __future__ import annotations

import json
import logging
import os

import pytest

from datatools import build_mini, class_tree
from upt.data import CATALOG, load_dataset
from upt.errors import UptError


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_reads_miniature_layout(name, tmp_path):
    expect = build_mini(name, tmp_path)
    splits = load_dataset(name, tmp_path)
    assert splits.name == name
    assert splits.classnames == expect.classnames
    assert splits.counts() == expect.counts
    assert splits.template == CATALOG[name].template
    for split in ("train", "val", "test"):
        for sample in splits.split(split):
            assert os.path.isabs(sample.path) and os.path.isfile(sample.path)
            labels = {y for frag, y in expect.label_of.items() if frag in sample.path}
            assert labels == {sample.label}, (sample, labels)
    assert splits.info["dataset_dir"] == str(tmp_path / CATALOG[name].folder)
    assert splits.info["official_split"] is True


def test_imagenet_val_is_test(tmp_path):
    build_mini("imagenet", tmp_path)
    splits = load_dataset("imagenet", tmp_path)
    assert splits.val == splits.test and splits.info["val_is_test"] is True
    assert all("/images/val/" in s.path for s in splits.test)
    assert all("/images/train/" in s.path for s in splits.train)


def test_test_only_datasets_have_no_train(tmp_path):
    build_mini("imagenet_r", tmp_path)
    splits = load_dataset("imagenet_r", tmp_path)
    assert splits.train == [] and splits.info["test_only"] is True


def test_root_from_environment(tmp_path, monkeypatch):
    build_mini("dtd", tmp_path)
    monkeypatch.setenv("UPT_DATA_ROOT", str(tmp_path))
    assert load_dataset("dtd").num_classes == 3


def test_fallback_split_is_flagged_and_deterministic(tmp_path, caplog):
    class_tree(tmp_path / "dtd" / "images", {"banded": 10, "blotchy": 10})
    with caplog.at_level(logging.WARNING):
        a = load_dataset("dtd", tmp_path)
    assert "NOT CoOp's official split" in caplog.text
    assert "split_zhou_DescribableTextures.json" in caplog.text and "drive.google.com" in caplog.text
    assert a.info["official_split"] is False and a.info["split_source"] == "generated"
    assert a.counts() == {"train": 10, "val": 4, "test": 6}  # 50/20/30 per class
    b = load_dataset("dtd", tmp_path)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    assert not set(a.train) & set(a.test) and not set(a.val) & set(a.test)


def test_caltech_fallback_excludes_and_renames(tmp_path):
    class_tree(tmp_path / "caltech-101" / "101_ObjectCategories",
               {"BACKGROUND_Google": 4, "Faces": 4, "Faces_easy": 4, "Leopards": 4, "airplanes": 4, "yin_yang": 4})
    splits = load_dataset("caltech101", tmp_path)
    assert splits.classnames == ["face", "leopard", "airplane", "yin yang"]  # CoOp's case-sensitive sort
    assert not any("Faces_easy" in s.path or "BACKGROUND" in s.path for s in splits.train + splits.val + splits.test)


def test_eurosat_fallback_uses_readable_names(tmp_path):
    class_tree(tmp_path / "eurosat" / "2750", {"Highway": 3, "PermanentCrop": 3, "River": 3})
    splits = load_dataset("eurosat", tmp_path)
    assert splits.classnames == ["Highway or Road", "Permanent Crop Land", "River"]


def test_pets_fallback_splits_official_trainval(tmp_path):
    build_mini("oxford_pets", tmp_path)
    (tmp_path / "oxford_pets" / "split_zhou_OxfordPets.json").unlink()
    splits = load_dataset("oxford_pets", tmp_path)
    assert splits.classnames == ["abyssinian", "american bulldog"]
    assert splits.counts() == {"train": 6, "val": 2, "test": 2}  # trainval 4 per class -> 3/1
    assert all(s.path.endswith(("_5.jpg",)) for s in splits.test)
    assert splits.info["official_split"] is False


@pytest.mark.parametrize("name", ["stanford_cars", "sun397", "ucf101", "oxford_flowers"])
def test_missing_split_without_fallback_says_where_to_get_it(name, tmp_path):
    build_mini(name, tmp_path)
    spec = CATALOG[name]
    (tmp_path / spec.folder / spec.split_file).unlink()
    with pytest.raises(UptError, match=f"Split file .*{spec.split_file} not found") as err:
        load_dataset(name, tmp_path)
    assert spec.split_url in str(err.value) and str(tmp_path / spec.folder) in str(err.value)


def test_eurosat_json_with_readable_names_is_unchanged(tmp_path):
    build_mini("eurosat", tmp_path)
    path = tmp_path / "eurosat" / "split_zhou_EuroSAT.json"
    data = json.loads(path.read_text())
    readable = {"AnnualCrop": "Annual Crop Land", "HerbaceousVegetation": "Herbaceous Vegetation Land",
                "SeaLake": "Sea or Lake"}
    for rows in data.values():
        for row in rows:
            row[2] = readable[row[2]]
    path.write_text(json.dumps(data))
    assert load_dataset("eurosat", tmp_path).classnames == list(readable.values())
