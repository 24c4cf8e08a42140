"""Test helpers for data: the real-photo locator and miniature copies of every catalog layout.

``shared_data()`` finds ``../shared/data`` (or ``$UPT_SHARED/data``) and skips the test when absent.
``build_mini(name, root)`` writes a tiny tree in exactly that dataset's CoOp layout (8x8 JPEGs) and
returns what reading it must give, so any test can get a real-layout dataset in milliseconds.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from helpers import shared_path


def shared_data(sub: str = "") -> Path:
    """Path of the shared real-image test data (or a sub-folder); skips the test when absent."""
    return shared_path("data", *([sub] if sub else []))


def _jpeg_bytes(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


_JPEGS = [_jpeg_bytes(((37 * i) % 256, (91 * i) % 256, (53 * i) % 256)) for i in range(16)]


def write_image(path: Path, i: int = 0) -> Path:
    """Write a tiny valid JPEG (colour picked by ``i``) at ``path``, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_JPEGS[i % len(_JPEGS)])
    return path


def class_tree(folder: Path, classes: dict[str, int], ext: str = ".jpg") -> None:
    """``folder/<class>/<class>_<i>.jpg``, ``n`` images per class."""
    for c, n in classes.items():
        for i in range(n):
            write_image(folder / c / f"{c}_{i:03d}{ext}", i)


@dataclass
class Expect:
    """What reading a miniature dataset must give."""

    classnames: list[str]
    counts: dict[str, int]
    label_of: dict[str, int]  # a path fragment (class folder or file stem) -> label


def _split_json(ddir: Path, file: str, image_dir: Path, rows: list[tuple[str, int, str]], val_every: int = 3) -> dict:
    """Write every listed image and a split JSON: per class, 1 test, 1 val, rest train."""
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    seen: dict[int, int] = {}
    for i, (rel, label, name) in enumerate(rows):
        write_image(image_dir / rel, i)
        k = seen[label] = seen.get(label, -1) + 1
        split["test" if k == 0 else "val" if k == 1 else "train"].append([rel, label, name])
    (ddir / file).write_text(json.dumps(split))
    return {s: len(v) for s, v in split.items()}


def _coop(root: Path, folder: str, image_dir: str, file: str, classes: list[tuple[str, str]], n: int = 4) -> dict:
    """classes: (folder name, classname as stored in the JSON); images image_dir/<folder>/<i>.jpg."""
    ddir = root / folder
    rows = [(f"{c}/{c}_{i}.jpg", label, name) for label, (c, name) in enumerate(classes) for i in range(n)]
    return _split_json(ddir, file, ddir / image_dir, rows)


WNIDS = {"n01440764": "tench", "n01443537": "goldfish", "n01484850": "great white shark", "n01491361": "tiger shark"}


def _classnames_txt(path: Path, wnids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{w} {WNIDS[w]}\n" for w in wnids))


def build_mini(name: str, root: Path) -> Expect:
    """Write a miniature ``name`` dataset under data root ``root``; return what reading it gives."""
    if name == "imagenet":
        ddir = root / "imagenet"
        wnids = sorted(WNIDS)[:3]
        _classnames_txt(ddir / "classnames.txt", wnids[::-1])  # file order must not matter
        class_tree(ddir / "images" / "train", {w: 3 for w in wnids})
        class_tree(ddir / "images" / "val", {w: 2 for w in wnids})
        return Expect([WNIDS[w] for w in wnids], {"train": 9, "val": 6, "test": 6}, {w: i for i, w in enumerate(wnids)})
    if name == "caltech101":
        classes = [("Faces", "face"), ("Leopards", "leopard"), ("accordion", "accordion"), ("airplanes", "airplane"),
                   ("yin_yang", "yin_yang")]
        counts = _coop(root, "caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json", classes)
        class_tree(root / "caltech-101" / "101_ObjectCategories", {"BACKGROUND_Google": 2, "Faces_easy": 2})
        return Expect(["face", "leopard", "accordion", "airplane", "yin yang"], counts,
                      {f"/{c}/": i for i, (c, _) in enumerate(classes)})
    if name == "oxford_pets":
        ddir = root / "oxford_pets"
        breeds = [("Abyssinian", "abyssinian"), ("american_bulldog", "american_bulldog")]
        rows = [(f"{b}_{i}.jpg", label, n) for label, (b, n) in enumerate(breeds) for i in range(1, 6)]
        counts = _split_json(ddir, "split_zhou_OxfordPets.json", ddir / "images", rows)
        (ddir / "annotations").mkdir()
        for split, ids in (("trainval", range(1, 5)), ("test", range(5, 6))):
            (ddir / "annotations" / f"{split}.txt").write_text(
                "".join(f"{b}_{i} {label + 1} 1 {label + 1}\n" for label, (b, _) in enumerate(breeds) for i in ids))
        return Expect(["abyssinian", "american bulldog"], counts, {"Abyssinian_": 0, "american_bulldog_": 1})
    if name == "stanford_cars":
        ddir = root / "stanford_cars"
        names = ["2012 Tesla Model S", "AM General Hummer SUV 2000"]
        rows = [(f"cars_{'train' if i < 3 else 'test'}/{label}{i:04d}.jpg", label, n)
                for label, n in enumerate(names) for i in range(4)]
        counts = _split_json(ddir, "split_zhou_StanfordCars.json", ddir, rows)
        (ddir / "devkit").mkdir()
        return Expect(names, counts, {"/0000": 0, "/1000": 1})
    if name == "oxford_flowers":
        ddir = root / "oxford_flowers"
        names = ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"]
        rows = [(f"image_{label}{i:04d}.jpg", label, n) for label, n in enumerate(names) for i in range(3)]
        return Expect(names, _split_json(ddir, "split_zhou_OxfordFlowers.json", ddir / "jpg", rows),
                      {f"image_{i}0": i for i in range(3)})
    if name == "food101":
        classes = [("apple_pie", "apple_pie"), ("baby_back_ribs", "baby_back_ribs")]
        counts = _coop(root, "food-101", "images", "split_zhou_Food101.json", classes)
        (root / "food-101" / "meta").mkdir()
        return Expect(["apple pie", "baby back ribs"], counts, {"/apple_pie/": 0, "/baby_back_ribs/": 1})
    if name == "fgvc_aircraft":
        ddir = root / "fgvc_aircraft"
        variants = ["707-320", "A300B4", "F/A-18"]
        ddir.mkdir(parents=True)
        (ddir / "variants.txt").write_text("\n".join(variants) + "\n")
        n = {"train": 2, "val": 1, "test": 1}
        for s, (split, k) in enumerate(n.items()):
            lines = []
            for label, v in enumerate(variants):
                for i in range(k):
                    image = f"{label}{s}{i}"  # FGVC ids are digits: <label><split><i>
                    write_image(ddir / "images" / f"{image}.jpg", i)
                    lines.append(f"{image} {v}\n")
            (ddir / f"images_variant_{split}.txt").write_text("".join(lines))
        return Expect(variants, {s: k * 3 for s, k in n.items()}, {f"/images/{i}": i for i in range(3)})
    if name == "sun397":
        classes = [("a/abbey", "abbey"), ("a/airport_terminal", "airport_terminal"), ("b/bakery/shop", "shop_bakery")]
        counts = _coop(root, "sun397", "SUN397", "split_zhou_SUN397.json", classes)
        return Expect(["abbey", "airport terminal", "shop bakery"], counts,
                      {"/abbey/": 0, "/airport_terminal/": 1, "/bakery/shop/": 2})
    if name == "dtd":
        classes = [(c, c) for c in ("banded", "blotchy", "braided")]
        counts = _coop(root, "dtd", "images", "split_zhou_DescribableTextures.json", classes)
        return Expect(["banded", "blotchy", "braided"], counts, {f"/{c}/": i for i, (c, _) in enumerate(classes)})
    if name == "eurosat":
        classes = [("AnnualCrop", "AnnualCrop"), ("HerbaceousVegetation", "HerbaceousVegetation"),
                   ("SeaLake", "SeaLake")]
        counts = _coop(root, "eurosat", "2750", "split_zhou_EuroSAT.json", classes)
        return Expect(["Annual Crop Land", "Herbaceous Vegetation Land", "Sea or Lake"], counts,
                      {f"/{c}/": i for i, (c, _) in enumerate(classes)})
    if name == "ucf101":
        classes = [("Apply_Eye_Makeup", "Apply_Eye_Makeup"), ("Archery", "Archery")]
        counts = _coop(root, "ucf101", "UCF-101-midframes", "split_zhou_UCF101.json", classes)
        return Expect(["Apply Eye Makeup", "Archery"], counts, {"/Apply_Eye_Makeup/": 0, "/Archery/": 1})
    if name == "imagenetv2":
        ddir = root / "imagenetv2"
        order = ["n01484850", "n01440764", "n01443537"]  # v2 labels follow the file's order
        _classnames_txt(ddir / "classnames.txt", order)
        class_tree(ddir / "imagenetv2-matched-frequency-format-val", {str(i): 2 for i in range(3)}, ".jpeg")
        return Expect([WNIDS[w] for w in order], {"train": 0, "val": 0, "test": 6}, {f"/{i}/": i for i in range(3)})
    if name == "imagenet_sketch":
        ddir = root / "imagenet-sketch"
        wnids = sorted(WNIDS)[:3]
        _classnames_txt(ddir / "classnames.txt", wnids)
        class_tree(ddir / "images", {w: 2 for w in wnids}, ".JPEG")
        return Expect([WNIDS[w] for w in wnids], {"train": 0, "val": 0, "test": 6},
                      {w: i for i, w in enumerate(wnids)})
    if name in ("imagenet_a", "imagenet_r"):
        folder, sub = ("imagenet-adversarial", "imagenet-a") if name == "imagenet_a" else ("imagenet-rendition", "imagenet-r")
        ddir = root / folder
        _classnames_txt(ddir / "classnames.txt", sorted(WNIDS))
        present = ["n01491361", "n01443537"]  # a subset of classnames.txt, written unsorted
        class_tree(ddir / sub, {w: 2 for w in present})
        (ddir / sub / "README.txt").write_text("not a class")
        return Expect(["goldfish", "tiger shark"], {"train": 0, "val": 0, "test": 4},
                      {"n01443537": 0, "n01491361": 1})
    if name == "shapes":
        shapes = ["circle", "cross", "heart", "square", "star", "triangle"]  # sorted folder order
        return Expect(shapes, {"train": 180, "val": 72, "test": 108}, {f"/{c}/": i for i, c in enumerate(shapes)})
    raise KeyError(name)
