"""Hostile and degenerate data: symlink loops, split entries that leave the dataset, 16-bit images,
degenerate tasks, relative ``folder:`` paths.

Every dataset is built in ``tmp_path`` from copies of the shared real photos (``flowers5``, ``dtd10``)
or drawn with PIL; the shared folder itself is only read.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datatools import build_mini
from helpers import shared_path
from upt.data import canonical_dataset, load_dataset, load_image
from upt.data.images import ToRGB
from upt.errors import UptError

DTD_SPLIT = "split_zhou_DescribableTextures.json"


def _flowers(dst: Path, classes: dict[str, int], like: dict[str, str] | None = None) -> Path:
    """Copy the first ``n`` photos of each flowers5 class into ``dst/<class>/`` (``like`` renames classes)."""
    src = shared_path("data", "flowers5")
    for c, n in classes.items():
        (dst / c).mkdir(parents=True)
        for f in sorted((src / (like or {}).get(c, c)).iterdir())[:n]:
            shutil.copy(f, dst / c / f.name)
    return dst


def _dtd(root: Path) -> Path:
    """Copy the shared CoOp-layout dtd10 under data root ``root``; return its split file."""
    shutil.copytree(shared_path("data", "dtd10", "dtd"), root / "dtd")
    return root / "dtd" / DTD_SPLIT


def _all(splits):
    return splits.train + splits.val + splits.test


def _folder_of(sample) -> str:
    return Path(sample.path).parent.name


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# 1. Symbolic links in image folders -------------------------------------------------------------


def test_self_link_in_class_folder_lists_each_image_once(tmp_path, caplog):
    data = _flowers(tmp_path / "own", {"daisy": 10, "rose": 10})
    (data / "daisy" / "self").symlink_to(".")
    splits = load_dataset(f"folder:{data}")
    paths = [s.path for s in _all(splits)]
    assert len(paths) == 20 and len(set(paths)) == 20
    assert splits.counts() == {"train": 10, "val": 4, "test": 6}
    assert any("daisy/self (a folder listed already)" in m for m in _warnings(caplog))


def test_up_link_does_not_give_every_image_one_label(tmp_path, caplog):
    data = _flowers(tmp_path / "own", {"daisy": 10, "rose": 10})
    (data / "daisy" / "up").symlink_to("..")
    splits = load_dataset(f"folder:{data}")
    assert splits.classnames == ["daisy", "rose"]
    assert sorted(_folder_of(s) for s in _all(splits)) == ["daisy"] * 10 + ["rose"] * 10
    assert all(splits.classnames[s.label] == _folder_of(s) for s in _all(splits))
    assert any("daisy/up (a folder listed already)" in m for m in _warnings(caplog))


def test_links_leaving_the_dataset_are_skipped_and_named(tmp_path, caplog):
    data = _flowers(tmp_path / "own", {"daisy": 10, "rose": 10})
    outside = _flowers(tmp_path / "elsewhere", {"tulip": 10, "dandelion": 3})
    (data / "tulip").symlink_to(outside / "tulip")  # a class folder outside the root
    (data / "rose" / "more").symlink_to(outside / "dandelion")  # a sub-folder outside the root
    (data / "rose" / "stray.jpg").symlink_to(next((outside / "dandelion").iterdir()))  # a file outside
    inside = sorted((data / "rose").glob("*.jpg"))[0]
    (data / "daisy" / "linked.jpg").symlink_to(inside)  # a linked file inside the root is kept
    splits = load_dataset(f"folder:{data}")
    assert splits.classnames == ["daisy", "rose"]
    assert sorted(_folder_of(s) for s in _all(splits)) == ["daisy"] * 11 + ["rose"] * 10
    assert not any(str(tmp_path / "elsewhere") in s.path or "/more/" in s.path for s in _all(splits))
    text = " ".join(_warnings(caplog))
    assert f"tulip (leads to {outside / 'tulip'}, outside)" in text
    assert f"rose/more (leads to {outside / 'dandelion'}, outside)" in text
    assert "rose/stray.jpg (leads to" in text


def test_linked_class_folder_duplicate_is_skipped(tmp_path, caplog):
    data = _flowers(tmp_path / "own", {"daisy": 10, "rose": 10})
    (data / "a_daisy_again").symlink_to("daisy")  # sorts first, but the real folder keeps its images
    splits = load_dataset(f"folder:{data}")
    assert splits.classnames == ["daisy", "rose"]
    assert len(_all(splits)) == 20
    assert any("a_daisy_again (a folder listed already)" in m for m in _warnings(caplog))


def test_test_folder_linked_to_train_never_puts_test_images_in_training(tmp_path, caplog):
    _flowers(tmp_path / "own" / "train", {"daisy": 10, "rose": 10})
    _flowers(tmp_path / "own" / "test", {"rose": 0})
    (tmp_path / "own" / "test" / "daisy").symlink_to("../train/daisy")
    for f in sorted((shared_path("data", "flowers5") / "rose").iterdir())[10:14]:
        shutil.copy(f, tmp_path / "own" / "test" / "rose" / f.name)
    splits = load_dataset(f"folder:{tmp_path / 'own'}")
    assert splits.counts() == {"train": 16, "val": 4, "test": 4}
    assert {_folder_of(s) for s in splits.test} == {"rose"}
    assert not {s.path for s in splits.test} & {s.path for s in splits.train + splits.val}
    assert any("test/daisy (a folder listed already)" in m for m in _warnings(caplog))


def test_imagenet_val_folder_linked_to_train_is_skipped(tmp_path, caplog):
    build_mini("imagenet", tmp_path)
    images = tmp_path / "imagenet" / "images"
    shutil.rmtree(images / "val" / "n01440764")
    (images / "val" / "n01440764").symlink_to("../train/n01440764")
    splits = load_dataset("imagenet", tmp_path)
    assert splits.counts() == {"train": 9, "val": 4, "test": 4}
    assert not {s.path for s in splits.test} & {s.path for s in splits.train}
    assert any("val/n01440764 (a folder listed already)" in m for m in _warnings(caplog))


# 2. Split entries that leave the dataset folder ---------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("/etc/passwd", "an absolute path; entries must be paths relative to the dataset folder {images}."),
        ("../../../../etc/passwd", "which is outside the dataset folder {images}; entries must be paths relative to it."),
        ("banded/../../split_zhou_DescribableTextures.json",
         "which is outside the dataset folder {images}; entries must be paths relative to it."),
    ],
)
def test_coop_split_entry_outside_the_images_is_refused(tmp_path, entry, problem):
    split_file = _dtd(tmp_path)
    data = json.loads(split_file.read_text())
    data["train"][3][0] = entry
    split_file.write_text(json.dumps(data))
    images = tmp_path / "dtd" / "images"
    message = f"Split file {split_file} lists {entry!r}, " + problem.format(images=images)
    with pytest.raises(UptError) as exc:
        load_dataset("dtd", tmp_path)
    assert str(exc.value) == message


def test_fgvc_list_entry_outside_the_images_is_refused(tmp_path):
    build_mini("fgvc_aircraft", tmp_path)
    ddir = tmp_path / "fgvc_aircraft"
    listing = ddir / "images_variant_train.txt"
    variant = listing.read_text().splitlines()[0].partition(" ")[2]
    listing.write_text(listing.read_text() + f"../../secret {variant}\n")
    n = len(listing.read_text().splitlines())
    with pytest.raises(UptError) as exc:
        load_dataset("fgvc_aircraft", tmp_path)
    assert str(exc.value) == (f"Split file {listing} (line {n}) lists '../../secret.jpg', which is outside the "
                              f"dataset folder {ddir / 'images'}; entries must be paths relative to it.")


def _own_list(tmp_path: Path, kind: str, outside: str) -> Path:
    data = _flowers(tmp_path / "own", {"daisy": 4, "rose": 4})
    rows = [(f"{c}/{f.name}", c) for c in ("daisy", "rose") for f in sorted((data / c).iterdir())]
    rows.append((outside, "rose"))
    if kind == "csv":
        path = data / "list.csv"
        path.write_text("path,label\n" + "".join(f"{p},{y}\n" for p, y in rows))
    else:
        path = data / "list.json"
        path.write_text(json.dumps([{"path": p, "label": y} for p, y in rows]))
    return path


@pytest.mark.parametrize("kind", ["csv", "json"])
@pytest.mark.parametrize("outside", ["/etc/passwd", "../elsewhere/x.jpg", "daisy/../../x.jpg"])
def test_own_list_entry_outside_its_folder_is_refused(tmp_path, kind, outside):
    path = _own_list(tmp_path, kind, outside)
    with pytest.raises(UptError) as exc:
        load_dataset(f"folder:{path}")
    assert str(exc.value) == (f"List file {path} lists {outside!r}, which is outside the dataset folder "
                              f"{path.parent}; entries must be paths relative to it or absolute paths inside it.")


def test_own_list_absolute_path_inside_its_folder_is_kept(tmp_path):
    extra = tmp_path / "own" / "daisy" / "extra.jpg"
    path = _own_list(tmp_path, "csv", str(extra))
    shutil.copy(sorted((tmp_path / "own" / "rose").iterdir())[0], extra)
    splits = load_dataset(f"folder:{path}")
    assert str(extra) in {s.path for s in _all(splits)}
    assert len(_all(splits)) == 9


def test_own_list_row_with_a_list_for_split_is_one_error(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([["a.jpg", 0, ["train"]], ["b.jpg", 1, "test"]]))
    with pytest.raises(UptError) as exc:
        load_dataset(f"folder:{path}")
    assert str(exc.value) == (f"List file {path} has a row ('a.jpg', 0, ['train'], None) whose label is not a "
                              "number or name, or whose split or classname is not text.")


def test_own_csv_that_is_not_text_is_one_error(tmp_path):
    path = tmp_path / "list.csv"
    path.write_bytes(b"path,label\n\xff\xfe\x00bad,1\n")
    with pytest.raises(UptError) as exc:
        load_dataset(f"folder:{path}")
    assert str(exc.value) == (f"List file {path} cannot be read (not UTF-8 text); it must be a CSV list of images "
                              "and labels.")


NESTED = "[" * 200_000 + "]" * 200_000


def test_deeply_nested_own_json_is_one_error(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(NESTED)
    with pytest.raises(UptError) as exc:
        load_dataset(f"folder:{path}")
    assert str(exc.value) == (f"List file {path} cannot be read (nested too deeply to be a list of images); "
                              "it must be a JSON list of images and labels.")


def test_deeply_nested_split_file_is_one_error(tmp_path):
    split_file = _dtd(tmp_path)
    split_file.write_text(NESTED)
    with pytest.raises(UptError) as exc:
        load_dataset("dtd", tmp_path)
    assert str(exc.value) == (f"Split file {split_file} is malformed (nested too deeply to be a list of images); "
                              "replace it with a fresh copy.")


def test_moderately_nested_entry_is_shown_short(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[" + "[" * 900 + "]" * 900 + "]")  # loads, but a plain repr would recurse too deep
    with pytest.raises(UptError) as exc:
        load_dataset(f"folder:{path}")
    assert str(exc.value) == (f"List file {path}: entry 0 is [[[[...]]]], expected {{'path', 'label'}} "
                              "or [path, label].")


# 3. Every Pillow mode a user may have becomes the RGB a person expects -----------------------------


def _palette(transparent: bool) -> Image.Image:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * (256 * 3 - 6))
    if transparent:
        image.info["transparency"] = 0
    return image


MODES = {
    "1": (Image.new("1", (4, 4), 1), (255, 255, 255)),
    "L": (Image.new("L", (4, 4), 100), (100, 100, 100)),
    "LA": (Image.new("LA", (4, 4), (100, 7)), (100, 100, 100)),
    "P": (_palette(False), (10, 20, 30)),
    "P+transparency": (_palette(True), (10, 20, 30)),
    "RGB": (Image.new("RGB", (4, 4), (10, 20, 30)), (10, 20, 30)),
    "RGBA": (Image.new("RGBA", (4, 4), (10, 20, 30, 40)), (10, 20, 30)),
    "CMYK": (Image.new("CMYK", (4, 4), (255, 0, 0, 0)), (0, 255, 255)),
    "YCbCr": (Image.new("YCbCr", (4, 4), (128, 128, 128)), (128, 128, 128)),
    "I;16 mid-grey": (Image.new("I;16", (4, 4), 32768), (128, 128, 128)),
    "I;16 white": (Image.new("I;16", (4, 4), 65535), (255, 255, 255)),
    "I;16B mid-grey": (Image.new("I;16B", (4, 4), 32768), (128, 128, 128)),
    "I from 16-bit": (Image.new("I", (4, 4), 32768), (128, 128, 128)),
    "F in 0..1": (Image.new("F", (4, 4), 0.5), (128, 128, 128)),
}


@pytest.mark.parametrize("name", list(MODES))
def test_every_mode_becomes_expected_rgb(name):
    image, expected = MODES[name]
    out = ToRGB()(image)
    assert out.mode == "RGB" and out.size == (4, 4)
    assert {tuple(p) for p in np.asarray(out).reshape(-1, 3).tolist()} == {expected}


def test_wide_range_int_and_float_images_are_stretched_from_their_own_range():
    ints = Image.fromarray(np.array([[-100_000, 0], [100_000, 50_000]], dtype=np.int32))
    floats = Image.fromarray(np.array([[-2.0, 0.0], [6.0, 1000.0]], dtype=np.float32))
    assert (ints.mode, floats.mode) == ("I", "F")
    assert np.asarray(ToRGB()(ints))[..., 0].tolist() == [[0, 128], [255, 191]]
    assert np.asarray(ToRGB()(floats))[..., 0].tolist() == [[0, 1], [2, 255]]


@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "I;16"), ("TIFF", "I;16"), ("TIFF", "I;16B"), ("TIFF", "F")])
def test_high_bit_depth_photo_loads_as_the_8_bit_photo(tmp_path, fmt, mode):
    photo = sorted((shared_path("data", "flowers5") / "daisy").iterdir())[0]
    grey = np.asarray(Image.open(photo).convert("L"))
    if mode == "F":
        image = Image.fromarray(grey.astype(np.float32) / 255)
    else:
        raw = (grey.astype(np.uint16) * 257).astype(">u2" if mode == "I;16B" else "<u2")
        image = Image.frombytes(mode, (grey.shape[1], grey.shape[0]), raw.tobytes())
    path = tmp_path / f"photo.{fmt.lower()}"
    image.save(path, fmt)
    assert Image.open(path).mode == mode
    loaded = np.asarray(load_image(str(path)))
    assert loaded.shape == (*grey.shape, 3)
    assert (loaded == grey[..., None]).all()


# 5. Degenerate tasks are read with a warning ------------------------------------------------------


def test_one_class_warns(tmp_path, caplog):
    data = _flowers(tmp_path / "own", {"daisy": 10})
    splits = load_dataset(f"folder:{data}")
    assert splits.classnames == ["daisy"]
    assert _warnings(caplog) == [
        f"Dataset folder:{data} has exactly one class ('daisy'): every image gets that label, so accuracy is "
        "100% whatever the model does; add images of at least one more class."]


def test_class_with_test_images_but_no_training_images_warns(tmp_path, caplog):
    _flowers(tmp_path / "own" / "train", {"daisy": 10, "rose": 10})
    _flowers(tmp_path / "own" / "test", {"daisy": 3, "rose": 3, "tulip": 3})
    splits = load_dataset(f"folder:{tmp_path / 'own'}")
    assert splits.classnames == ["daisy", "rose", "tulip"]
    assert _warnings(caplog) == [
        f"Dataset folder:{tmp_path / 'own'}: 1 class(es) have test images but no training images (e.g. 'tulip', "
        "label 2); training never sees them, so their test accuracy measures zero-shot transfer only."]


def test_coop_class_without_training_images_warns(tmp_path, caplog):
    split_file = _dtd(tmp_path)
    data = json.loads(split_file.read_text())
    data["train"] = [e for e in data["train"] if e[1] != 9]
    split_file.write_text(json.dumps(data))
    splits = load_dataset("dtd", tmp_path)
    assert splits.counts() == {"train": 144, "val": 40, "test": 200}
    assert _warnings(caplog) == [
        "Dataset dtd: 1 class(es) have test images but no training images (e.g. 'crystalline', label 9); "
        "training never sees them, so their test accuracy measures zero-shot transfer only."]


def test_folders_that_clean_to_one_name_warn(tmp_path, caplog):
    data = _flowers(tmp_path / "own", {"golden_retriever": 5, "golden retriever": 5, "Golden Retriever": 5, "rose": 5},
                    like={"golden_retriever": "daisy", "golden retriever": "tulip", "Golden Retriever": "sunflower"})
    splits = load_dataset(f"folder:{data}")
    assert splits.classnames == ["Golden Retriever", "golden retriever", "golden retriever", "rose"]
    assert _warnings(caplog) == [
        f"Dataset folder:{data}: labels 0, 1 and 2 share the name 'Golden Retriever' once cleaned, so their "
        "prompts are identical and the model cannot tell them apart; rename the folders or classes so names differ."]


def test_a_sound_dataset_reads_without_warnings(caplog):
    splits = load_dataset(f"folder:{shared_path('data', 'flowers5')}")
    assert splits.num_classes == 5
    assert _warnings(caplog) == []


# 6. A relative folder: path is stored absolute ------------------------------------------------------


def test_relative_folder_is_recorded_absolute(tmp_path, monkeypatch):
    _flowers(tmp_path / "own", {"daisy": 10, "rose": 10})
    monkeypatch.chdir(tmp_path)
    absolute = str(Path.cwd() / "own")
    splits = load_dataset("folder:own")
    assert splits.name == f"folder:{absolute}"
    assert splits.info["dataset"] == f"folder:{absolute}"
    assert splits.info["dataset_given"] == "folder:own"
    assert splits.info["dataset_dir"] == absolute
    assert canonical_dataset("folder:own") == f"folder:{absolute}"
    assert canonical_dataset("folder:./own/") == f"folder:{absolute}"
    monkeypatch.chdir(tmp_path / "own" / "daisy")  # the stored name reads from anywhere
    again = load_dataset(splits.name)
    assert again.counts() == splits.counts() == {"train": 10, "val": 4, "test": 6}
    assert [s.path for s in again.test] == [s.path for s in splits.test]


def test_canonical_dataset_keeps_catalog_names_and_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert canonical_dataset("dtd") == "dtd"
    assert canonical_dataset("imagenet_sketch") == "imagenet_sketch"
    assert canonical_dataset("folder:~/pics") == f"folder:{tmp_path}/pics"
    assert canonical_dataset(f"folder:{tmp_path}/a/../pics") == f"folder:{tmp_path}/pics"


def test_catalog_dataset_records_what_was_given(tmp_path):
    _dtd(tmp_path)
    splits = load_dataset("dtd", tmp_path)
    assert (splits.name, splits.info["dataset"], splits.info["dataset_given"]) == ("dtd", "dtd", "dtd")
    assert splits.info["dataset_dir"] == str(tmp_path / "dtd")
