"""Every bad input gets one clear UptError sentence that names the problem and the path."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from datatools import build_mini, class_tree, write_image
from upt.data import ImageDataset, ImageReadError, load_dataset, load_image, verify_images
from upt.data.base import Sample
from upt.errors import UptError


def test_unknown_dataset_suggests_closest():
    with pytest.raises(UptError, match=r"Unknown dataset 'oxford_pet'\. Did you mean 'oxford_pets'\?"):
        load_dataset("oxford_pet", "/nowhere")


def test_missing_root_says_what_to_pass(tmp_path):
    with pytest.raises(UptError, match=rf"Data root {tmp_path}/absent does not exist: pass --data-root .* holds dtd/"):
        load_dataset("dtd", tmp_path / "absent")


def test_missing_dataset_folder_says_what_belongs_there(tmp_path):
    with pytest.raises(UptError, match=rf"Dataset folder {tmp_path}/caltech-101 not found: it should hold "
                                       r"101_ObjectCategories/ and split_zhou_Caltech101.json"):
        load_dataset("caltech101", tmp_path)


def test_missing_image_folder(tmp_path):
    (tmp_path / "dtd").mkdir()
    with pytest.raises(UptError, match=rf"Image folder {tmp_path}/dtd/images not found"):
        load_dataset("dtd", tmp_path)


def test_missing_own_data(tmp_path):
    with pytest.raises(UptError, match=rf"Own data {tmp_path}/mine not found: it should hold one sub-folder per class"):
        load_dataset(f"folder:{tmp_path / 'mine'}")


def test_empty_class_folder(tmp_path):
    class_tree(tmp_path, {"cat": 5})
    (tmp_path / "dog").mkdir()
    with pytest.raises(UptError, match=rf"Class folder {tmp_path}/dog holds no images"):
        load_dataset(f"folder:{tmp_path}")


def test_empty_class_folder_in_imagenet(tmp_path):
    build_mini("imagenet_sketch", tmp_path)
    with open(tmp_path / "imagenet-sketch" / "classnames.txt", "a") as f:
        f.write("n01491361 tiger shark\n")
    (tmp_path / "imagenet-sketch" / "images" / "n01491361").mkdir()
    with pytest.raises(UptError, match=r"Class folder .*/images/n01491361 holds no images"):
        load_dataset("imagenet_sketch", tmp_path)


def test_class_too_small_to_split(tmp_path):
    class_tree(tmp_path, {"cat": 5, "dog": 2})
    with pytest.raises(UptError, match=rf"Class folder {tmp_path}/dog holds 2 image\(s\); splitting it needs at least 3"):
        load_dataset(f"folder:{tmp_path}")


def test_split_json_with_missing_files(tmp_path):
    build_mini("dtd", tmp_path)
    for f in ("banded/banded_2.jpg", "braided/braided_3.jpg"):
        (tmp_path / "dtd" / "images" / f).unlink()
    with pytest.raises(UptError, match=r"split_zhou_DescribableTextures.json lists 2 image\(s\) missing under "
                                       r".*/dtd/images \(e.g. banded/banded_2.jpg, braided/braided_3.jpg\)"):
        load_dataset("dtd", tmp_path)


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ('{"train": [', r"not valid JSON: .* at line 1"),
        ('{"train": [], "val": []}', "expected an object with 'train', 'val' and 'test' lists"),
        ('{"train": [["a.jpg", "x", "a"]], "val": [], "test": []}', r"train entry 0 is \['a.jpg', 'x', 'a'\]"),
        ('{"train": [["a.jpg", 0]], "val": [], "test": []}', r"train entry 0 is \['a.jpg', 0\], expected \[relative_path, label, classname\]"),
        ('{"train": [["a.jpg", 0, "a"]], "val": [["b.jpg", 0, "b"]], "test": []}', "label 0 is named both 'a' and 'b'"),
        ('{"train": [["a.jpg", 1, "a"]], "val": [], "test": []}', "no entry has label 0"),
    ],
)
def test_malformed_split_json(tmp_path, content, detail):
    build_mini("dtd", tmp_path)
    path = tmp_path / "dtd" / "split_zhou_DescribableTextures.json"
    path.write_text(content)
    with pytest.raises(UptError, match=rf"Split file {path} is malformed \({detail}"):
        load_dataset("dtd", tmp_path)


def test_fgvc_unknown_variant(tmp_path):
    build_mini("fgvc_aircraft", tmp_path)
    with open(tmp_path / "fgvc_aircraft" / "images_variant_val.txt", "a") as f:
        f.write("0999 Spitfire\n")
    with pytest.raises(UptError, match=r"images_variant_val.txt line 4 names variant 'Spitfire'"):
        load_dataset("fgvc_aircraft", tmp_path)


def test_wnid_folder_not_in_classnames(tmp_path):
    build_mini("imagenet_a", tmp_path)
    class_tree(tmp_path / "imagenet-adversarial" / "imagenet-a", {"n09999999": 1})
    with pytest.raises(UptError, match=r"imagenet-a/n09999999 is not a class listed in .*classnames.txt"):
        load_dataset("imagenet_a", tmp_path)


def _corrupt(tmp_path):
    good = write_image(tmp_path / "good.jpg")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image")
    Image.new("RGB", (256, 256), (200, 10, 10)).save(tmp_path / "big.jpg", quality=95)
    truncated = tmp_path / "truncated.jpg"
    data = (tmp_path / "big.jpg").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    return good, garbage, truncated


def test_corrupt_and_truncated_images_are_named(tmp_path):
    good, garbage, truncated = _corrupt(tmp_path)
    assert load_image(str(good)).mode == "RGB"
    with pytest.raises(ImageReadError, match=rf"Image {garbage} cannot be read \(.*\); replace or delete the file\."):
        load_image(str(garbage))
    with pytest.raises(ImageReadError, match=rf"Image {truncated} cannot be read \(.*truncated.*\)"):
        load_image(str(truncated))
    with pytest.raises(ImageReadError, match=rf"Image {tmp_path}/absent.jpg does not exist"):
        load_image(str(tmp_path / "absent.jpg"))


def test_verify_images_names_every_bad_file(tmp_path):
    good, garbage, truncated = _corrupt(tmp_path)
    bad = verify_images([good, garbage, truncated, good])
    assert [p for p, _ in bad] == [str(garbage), str(truncated)]
    with pytest.raises(ImageReadError, match=rf"2 images cannot be read: {garbage}, {truncated}; replace or delete"):
        verify_images([str(good), str(garbage), str(truncated)], raise_error=True)


def test_bad_image_inside_dataloader_worker_keeps_one_line(tmp_path):
    _, garbage, _ = _corrupt(tmp_path)
    loader = torch.utils.data.DataLoader(ImageDataset([Sample(str(garbage), 0)], transform=lambda im: 0), num_workers=1)
    batches = iter(loader)
    try:
        next(batches)
    except ImageReadError as exc:
        message = str(exc)
    finally:
        batches._shutdown_workers()  # now: left to the garbage collector, shutdown stalls for 5 s
    assert message.startswith(f"Image {garbage} cannot be read") and "\n" not in message and "Traceback" not in message


def test_fewshot_and_class_subset_inputs():
    from upt.data import DatasetSplits, base_new_split, fewshot_indices, subset_classes

    with pytest.raises(UptError, match="Shots must be at least 1, got 0"):
        fewshot_indices([0, 1], 0, 1)
    splits = DatasetSplits("x", ["a", "b"], "{}", [], [], [])
    with pytest.raises(UptError, match="Unknown class subset 'old'; use base, new or all"):
        base_new_split(splits, "old")
    with pytest.raises(UptError, match="must be distinct labels in 0..1"):
        subset_classes(splits, [0, 2])


def test_list_file_bad_json(tmp_path):
    (tmp_path / "l.json").write_text(json.dumps({"images": []}))
    with pytest.raises(UptError, match="is malformed \\(expected an object with 'train', 'val' and 'test'"):
        load_dataset(f"folder:{tmp_path / 'l.json'}")
