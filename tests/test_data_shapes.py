"""The synthetic shapes dataset: deterministic, fast, read through the catalog and the CLI."""

from __future__ import annotations

import numpy as np
from PIL import Image

from upt.cli import main
from upt.data import SHAPES, load_dataset, make_shapes
from upt.data.shapes import draw_shape


def _pixels(path):
    return np.asarray(Image.open(path))


def test_deterministic_and_varied(tmp_path):
    a = make_shapes(tmp_path / "a", per_class=5)
    b = make_shapes(tmp_path / "b", per_class=5)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.png")) and len(files) == 30
    assert all(np.array_equal(_pixels(a / f), _pixels(b / f)) for f in files)
    star0, star1 = _pixels(a / "star" / "star_0000.png"), _pixels(a / "star" / "star_0001.png")
    assert star0.shape == (64, 64, 3) and not np.array_equal(star0, star1)
    assert not np.array_equal(np.asarray(draw_shape("star", 0, seed=0)), np.asarray(draw_shape("star", 0, seed=1)))
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary folder was renamed into place


def test_shape_is_drawn_in_a_colour_apart_from_the_background():
    image = np.asarray(draw_shape("square", 3), dtype=float)
    assert image.reshape(-1, 3).std(axis=0).max() > 20


def test_catalog_generates_on_first_use(tmp_path):
    splits = load_dataset("shapes", tmp_path)
    assert splits.classnames == sorted(SHAPES) and splits.counts() == {"train": 180, "val": 72, "test": 108}
    assert splits.template == "a drawing of a {}." and (tmp_path / "shapes" / "heart").is_dir()
    again = load_dataset("shapes", tmp_path)  # second time: read, not redrawn
    assert again.train == splits.train


def test_cli_writes_shapes(tmp_path, capsys):
    assert main(["data", "shapes", "--out", str(tmp_path / "s"), "--per-class", "3", "--size", "32"]) == 0
    assert "wrote 18 images" in capsys.readouterr().out
    assert Image.open(tmp_path / "s" / "cross" / "cross_0002.png").size == (32, 32)
    assert main(["data", "shapes", "--out", str(tmp_path / "t"), "--per-class", "0"]) == 2
    assert "--per-class must be at least 1" in capsys.readouterr().err
