"""``upt data check`` / :func:`check_dataset` and ``upt data info``."""

from __future__ import annotations

from datatools import build_mini, class_tree
from upt.cli import main
from upt.data import CATALOG, check_dataset, get_spec, list_datasets, manual_steps


def test_catalog_has_the_16_datasets():
    assert sorted(CATALOG) == sorted([
        "imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101", "fgvc_aircraft",
        "sun397", "dtd", "eurosat", "ucf101", "imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r", "shapes"])
    rows = list_datasets()
    assert [r["name"] for r in rows] == list(CATALOG)
    assert all(set(r) == {"name", "classes", "folder", "template", "description"} for r in rows)
    assert {r["name"]: r["classes"] for r in rows}["imagenet_a"] == 200
    for spec in CATALOG.values():
        assert spec.template.count("{}") == 1 and spec.download.steps and manual_steps(spec).startswith("1. ")
        assert (spec.split_file is None) == (spec.split_url is None)
    assert get_spec("caltech101").expected == {"train": 4128, "val": 1649, "test": 2465}
    assert get_spec("imagenet").expected == {"train": 1281167, "val": None, "test": 50000}
    assert get_spec("food101").expected == {"train": 50500, "val": 20200, "test": 30300}


def test_clean_miniature_matches_except_official_counts(tmp_path):
    build_mini("dtd", tmp_path)
    report = check_dataset("dtd", tmp_path)
    assert report.counts == {"train": 6, "val": 3, "test": 3} and report.decoded
    assert not report.missing and not report.unreadable
    assert report.problems == ["train has 6 images; the official split has 2820.",
                               "val has 3 images; the official split has 1128.",
                               "test has 3 images; the official split has 1692.",
                               "3 classes read; the full dataset has 47."]


def test_missing_and_unreadable_files_are_named(tmp_path):
    build_mini("eurosat", tmp_path)
    images = tmp_path / "eurosat" / "2750"
    for i in (0, 1, 2):
        (images / "SeaLake" / f"SeaLake_{i}.jpg").unlink()
    (images / "AnnualCrop" / "AnnualCrop_3.jpg").write_bytes(b"\xff\xd8broken")
    report = check_dataset("eurosat", tmp_path, max_listed=2)
    assert report.n_missing == 3 and len(report.missing) == 2
    assert report.missing[0].endswith("SeaLake/SeaLake_0.jpg")
    assert [p for p, _ in report.unreadable] == [str(images / "AnnualCrop" / "AnnualCrop_3.jpg")]
    text = report.format()
    assert "missing files: 3 (first listed)" in text and "AnnualCrop_3.jpg cannot be read" in text
    assert "problem: 3 listed image(s) are missing." in text and "problem: 1 image(s) cannot be read." in text
    quick = check_dataset("eurosat", tmp_path, decode=False)
    assert not quick.decoded and not quick.unreadable and quick.n_missing == 3


def test_generated_split_is_a_problem_with_steps(tmp_path):
    class_tree(tmp_path / "food-101" / "images", {"apple_pie": 4, "ramen": 4})
    report = check_dataset("food101", tmp_path)
    assert any("NOT CoOp's official split" in p for p in report.problems)
    assert "split_zhou_Food101.json" in report.steps and "torchvision.datasets.Food101" in report.steps


def test_unreadable_layout_gives_steps(tmp_path):
    report = check_dataset("ucf101", tmp_path)
    assert not report.ok and "Dataset folder" in report.problems[0]
    assert "UCF-101-midframes.zip" in report.steps


def test_cli_exit_codes(tmp_path, capsys):
    class_tree(tmp_path / "own", {"a": 4, "b": 4})
    assert main(["data", "check", "--dataset", f"folder:{tmp_path / 'own'}"]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
    assert main(["data", "check", "--dataset", "sun397", "--data-root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "how to get it:" in out and "split_zhou_SUN397.json" in out
    assert main(["data", "check", "--dataset", "sun398", "--data-root", str(tmp_path)]) == 2
    assert "Did you mean 'sun397'?" in capsys.readouterr().err
    assert main(["data", "info", "--dataset", "dtd"]) == 0
    out = capsys.readouterr().out
    assert "{} texture." in out and "torchvision.datasets.DTD" in out and "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x" in out
