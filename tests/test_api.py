"""The Python API: run_config resolves as `upt train` does, image_folder writes what the folder reader
reads, and mistakes are one sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import upt
from upt.cli import build_parser
from upt.commands.train import config_from_args
from upt.errors import UptError


def test_run_config_resolves_exactly_as_the_command_line():
    flags = ["train", "--method", "cocoop", "--dataset", "dtd", "--backbone", "tiny", "--shots", "4", "--lr", "0.01",
             "--protocol", "base2new", "--set", "method_config.n_ctx=2", "--set", "data.num_workers=0"]
    from_cli = config_from_args(build_parser().parse_args(flags))
    from_python = upt.run_config(method="cocoop", dataset="dtd", backbone="tiny", shots=4, lr=0.01,
                                 protocol="base2new", overrides=["method_config.n_ctx=2"], data={"num_workers": 0})
    assert from_python == from_cli
    assert (from_python.optim.batch_size, from_python.optim.lr, from_python.classes) == (1, 0.01, "base")
    assert upt.run_config(backbone="toy").pretrained == "upt" and upt.run_config(backbone="tiny").pretrained is None
    with pytest.raises(UptError, match="^Unknown setting 'learning_rate'; known: "):
        upt.run_config(learning_rate=0.1)


def test_image_folder_writes_what_the_reader_reads(tmp_path):
    rng = np.random.default_rng(0)
    train = [(rng.random((20, 24, 3), dtype=np.float32), i % 3) for i in range(9)]  # float 0..1, channels last
    test = list(zip(torch.randint(0, 256, (6, 3, 20, 24), dtype=torch.uint8), torch.tensor([0, 1, 2, 0, 1, 2]),
                    strict=True))
    data = upt.image_folder(tmp_path / "mine", ["cat", "dog", "fish"], train=train, test=test)
    assert data == f"folder:{tmp_path / 'mine'}"
    splits = upt.load_dataset(data)
    assert splits.classnames == ["cat", "dog", "fish"]
    assert sorted(s.label for s in splits.train + splits.val) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sorted(s.label for s in splits.test) == [0, 0, 1, 1, 2, 2]
    from PIL import Image

    first = Image.open(tmp_path / "mine" / "test" / "cat" / "000000.png")
    assert np.array_equal(np.asarray(first), test[0][0].permute(1, 2, 0).numpy())  # stored losslessly


def test_image_folder_mistakes_lose_nothing(tmp_path):
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(UptError, match="already exists and is not an empty folder"):
        upt.image_folder(tmp_path / "full", ["a", "b"], train=[(image, 0)])
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(UptError, match=r"train item 1 has label 2, outside 0\.\.1\."):
        upt.image_folder(tmp_path / "x", ["a", "b"], train=[(image, 0), (image, 2)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]  # nothing half-written left behind
    with pytest.raises(UptError, match="distinct folder names"):
        upt.image_folder(tmp_path / "y", ["a", "a/b"], train=[(image, 0)])
    with pytest.raises(UptError, match="train item 0 is not an"):
        upt.image_folder(tmp_path / "z", ["a", "b"], train=[image])
    with pytest.raises(UptError, match="^train image 0 is of type str"):
        upt.image_folder(tmp_path / "w", ["a", "b"], train=[("not an image", 0)])
