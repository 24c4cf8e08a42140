"""Own data through ``folder:``: class folders, split folders, CSV and JSON lists."""

from __future__ import annotations

import json
import os

import pytest

from datatools import class_tree, write_image
from upt.data import load_dataset
from upt.errors import UptError


def _labels(samples):
    return [s.label for s in samples]


def test_class_folders_split_50_20_30(tmp_path):
    class_tree(tmp_path, {"golden_retriever": 10, "cat": 20})
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "cat" / ".DS_Store").write_text("ignored")
    splits = load_dataset(f"folder:{tmp_path}")
    assert splits.classnames == ["cat", "golden retriever"]
    assert splits.template == "a photo of a {}."
    assert splits.counts() == {"train": 15, "val": 6, "test": 9}
    assert _labels(splits.test).count(0) == 6 and _labels(splits.test).count(1) == 3
    assert splits.info["official_split"] is False and "SHA-256" in splits.info["split_rule"]
    everything = splits.train + splits.val + splits.test
    assert len(set(everything)) == 30


def test_class_folder_split_is_a_function_of_file_names(tmp_path):
    class_tree(tmp_path / "a", {"x": 10, "y": 10})
    class_tree(tmp_path / "b", {"x": 10, "y": 10, "z": 5})  # an extra class moves nothing
    a, b = load_dataset(f"folder:{tmp_path / 'a'}"), load_dataset(f"folder:{tmp_path / 'b'}")

    def names(samples, root):
        return sorted(os.path.relpath(s.path, root) for s in samples if "/z/" not in s.path)

    for split in ("train", "val", "test"):
        assert names(a.split(split), tmp_path / "a") == names(b.split(split), tmp_path / "b")


def test_split_folders_with_val(tmp_path):
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        class_tree(tmp_path / split, {"dog": n, "cat": n})
    splits = load_dataset(f"folder:{tmp_path}")
    assert splits.classnames == ["cat", "dog"]
    assert splits.counts() == {"train": 8, "val": 4, "test": 6}
    assert splits.info["official_split"] is True
    assert all("/val/" in s.path for s in splits.val)


def test_split_folders_without_val_carve_20_percent_of_train(tmp_path):
    class_tree(tmp_path / "train", {"dog": 10, "cat": 10})
    class_tree(tmp_path / "test", {"dog": 3, "cat": 3})
    splits = load_dataset(f"folder:{tmp_path}")
    assert splits.counts() == {"train": 16, "val": 4, "test": 6}
    assert all("/train/" in s.path for s in splits.val)
    assert not set(splits.train) & set(splits.val)
    assert splits.info["generated_splits"] == ["val"]


def test_split_folders_without_test_carve_it(tmp_path):
    class_tree(tmp_path / "train", {"dog": 10})
    class_tree(tmp_path / "val", {"dog": 2})
    splits = load_dataset(f"folder:{tmp_path}")
    assert splits.counts() == {"train": 7, "val": 2, "test": 3}


def test_csv_list_with_names_and_split_column(tmp_path):
    rows = ["path,label,split"]
    for i in range(6):
        c = "sea_lion" if i % 2 else "otter"
        write_image(tmp_path / "img" / f"{i}.jpg", i)
        rows.append(f"img/{i}.jpg,{c},{'test' if i >= 4 else 'train'}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    splits = load_dataset(f"folder:{tmp_path / 'list.csv'}")
    assert splits.classnames == ["otter", "sea lion"]
    assert splits.counts() == {"train": 2, "val": 2, "test": 2}  # val carved from train, 1 per class
    assert splits.test == sorted(splits.test, key=lambda s: (s.label, s.path))
    assert {s.path for s in splits.test} == {str(tmp_path / "img" / "4.jpg"), str(tmp_path / "img" / "5.jpg")}


def test_json_list_with_int_labels_and_classnames(tmp_path):
    items = []
    for i in range(10):
        write_image(tmp_path / f"{i}.png", i)
        items.append({"path": f"{i}.png", "label": 3 + i % 2, "classname": "red_fox" if i % 2 else "owl"})
    (tmp_path / "list.json").write_text(json.dumps(items))
    splits = load_dataset(f"folder:{tmp_path / 'list.json'}")
    assert splits.classnames == ["owl", "red fox"]  # labels 3, 4 become 0, 1
    assert splits.counts() == {"train": 4, "val": 2, "test": 4}  # 5 per class: 2/1/2 (1.5 rounds up)


def test_json_list_in_coop_split_format(tmp_path):
    data = {"train": [["a/0.jpg", 0, "a"], ["b/0.jpg", 1, "b_c"]], "val": [["a/1.jpg", 0, "a"]],
            "test": [["b/1.jpg", 1, "b_c"]]}
    for rows in data.values():
        for rel, _, _ in rows:
            write_image(tmp_path / rel)
    (tmp_path / "split.json").write_text(json.dumps(data))
    splits = load_dataset(f"folder:{tmp_path / 'split.json'}")
    assert splits.classnames == ["a", "b c"] and splits.counts() == {"train": 2, "val": 1, "test": 1}
    assert splits.info["official_split"] is True


def test_int_labels_without_names_warn(tmp_path, caplog):
    for i in range(6):
        write_image(tmp_path / f"{i}.jpg")
    (tmp_path / "l.csv").write_text("path,label\n" + "".join(f"{i}.jpg,{i % 2}\n" for i in range(6)))
    splits = load_dataset(f"folder:{tmp_path / 'l.csv'}")
    assert splits.classnames == ["0", "1"] and "without a 'classname'" in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("file,label\nx.jpg,a\n", "needs a header row with 'path' and 'label'"),
        ("path,label,split\nx.jpg,a,training\n", r"split values \['training'\]"),
        ("path,label,split\nx.jpg,a,train\ny.jpg,a,\n", "split for some rows but not for others"),
        ("path,label\n", "lists no images"),
    ],
)
def test_bad_csv_lists(tmp_path, content, message):
    write_image(tmp_path / "x.jpg")
    write_image(tmp_path / "y.jpg")
    (tmp_path / "l.csv").write_text(content)
    with pytest.raises(UptError, match=message):
        load_dataset(f"folder:{tmp_path / 'l.csv'}")


def test_list_with_missing_files(tmp_path):
    write_image(tmp_path / "here.jpg")
    (tmp_path / "l.csv").write_text("path,label\nhere.jpg,a\ngone.jpg,a\n")
    with pytest.raises(UptError, match=r"l.csv lists 1 image\(s\) missing under .*\(e.g. gone.jpg\)"):
        load_dataset(f"folder:{tmp_path / 'l.csv'}")
