"""``upt analyze variance``: the two statistics match their definitions, and on real photos they are
finite, in [0, 1], and plotted against the gains read from a results folder."""

from __future__ import annotations

import json
import math

import pytest
import torch

from test_report import assert_png, write_record
from test_sweep import photo_folders
from upt.analyze import gains_from_report, inter_class_variance, intra_class_variance
from upt.cli import main
from upt.errors import UptError


def test_statistics_follow_their_definitions():
    s = math.sqrt(0.5)
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [s, s], [s, s], [0.0, -1.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])  # class 2 has one image: left out
    # class 0: mean (0.5, 0.5), each point at squared distance 0.5; class 1: both points equal.
    assert intra_class_variance(feats, labels) == pytest.approx((0.5 + 0.0) / 2)
    text = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    mean = text.mean(0)
    assert inter_class_variance(text) == pytest.approx(float(((text - mean) ** 2).sum(1).mean()))
    assert inter_class_variance(text) == pytest.approx(1 - float(mean.norm() ** 2))  # unit vectors
    with pytest.raises(UptError, match="two or more images"):
        intra_class_variance(feats[:1], labels[:1])


def test_variance_on_real_photos_against_report_gains(tmp_path_factory, tmp_path, capsys):
    photos = photo_folders(tmp_path_factory)
    flowers, cifar = photos["flowers5"], photos["cifar10"]
    runs = tmp_path / "runs"
    for seed in (1, 2):
        write_record(runs, "fewshot", "zeroshot", flowers, 16, seed, 40.0)
        write_record(runs, "fewshot", "zeroshot", cifar, 1, seed, 20.0)  # zero-shot at another K: still the baseline
        write_record(runs, "fewshot", "coop", flowers, 16, seed, 50.0 + seed)
        write_record(runs, "fewshot", "coop", cifar, 16, seed, 15.0)
    assert gains_from_report(runs, shots=16) == {"coop": {flowers: pytest.approx(11.5), cifar: pytest.approx(-5.0)}}

    out = tmp_path / "analysis"
    assert main(["analyze", "variance", "--dataset", f"{flowers},{cifar}", "--backbone", "tiny", "--per-class", "6",
                 "--report", str(runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "flowers5" in printed and "cifar10" in printed
    result = json.loads((out / "variance.json").read_text())
    assert [s["dataset"] for s in result["stats"]] == [flowers, cifar]
    for s in result["stats"]:
        assert s["n_images"] == 6 * s["n_classes"]
        for key in ("intra_image_variance", "inter_text_variance"):
            assert math.isfinite(s[key]) and 0 < s[key] <= 1, (key, s)
    assert result["gains"]["coop"][flowers] == pytest.approx(11.5)
    assert_png(out / "variance.png")

    write_record(tmp_path / "no-baseline", "fewshot", "coop", "dtd", 16, 1, 50.0)
    with pytest.raises(UptError, match="No 'zeroshot' results"):
        gains_from_report(tmp_path / "no-baseline", shots=16)
