"""``upt analyze variance``: the two statistics match their definitions, and on real photos they are
finite, in [0, 1], and plotted against the gains read from a results folder (at its largest shot
count unless told); a dataset that fails is reported and the others are kept."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from helpers import shared_path
from test_report import assert_png, write_record
from test_sweep import photo_folders
from upt.analyze import (
    analyze_variance,
    gains_from_report,
    inter_class_variance,
    intra_class_variance,
    report_gains,
)
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
    assert gains_from_report(runs, shots=16) == {"coop": {flowers: 11.5, cifar: -5.0}}

    out = tmp_path / "analysis"
    assert main(["analyze", "variance", "--dataset", f"{flowers},{cifar}", "--backbone", "tiny", "--per-class", "6",
                 "--report", str(runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "flowers5" in printed and "cifar10" in printed
    result = json.loads((out / "variance.json").read_text())
    assert [s["dataset"] for s in result["stats"]] == [flowers, cifar] and result["failed"] == []
    assert result["shots"] == 16  # not given: the largest shot count with coop beside zero-shot
    for s in result["stats"]:
        assert s["n_images"] == 6 * s["n_classes"]
        for key in ("intra_image_variance", "inter_text_variance"):
            assert math.isfinite(s[key]) and 0 < s[key] <= 1, (key, s)
    assert result["gains"]["coop"][flowers] == pytest.approx(11.5)
    assert_png(out / "variance.png")
    assert (out / "variance.pdf").read_bytes()[:5] == b"%PDF-" and (out / "variance.svg").is_file()

    write_record(tmp_path / "no-baseline", "fewshot", "coop", "dtd", 16, 1, 50.0)
    with pytest.raises(UptError, match="No 'zeroshot' results"):
        gains_from_report(tmp_path / "no-baseline", shots=16)


def test_gains_default_to_the_largest_shot_count_of_the_report(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs, "fewshot", "zeroshot", "dtd", 0, 1, 40.0)  # run once, as sweeps do now
    for shots, acc in ((1, 41.0), (2, 43.0), (4, 46.5)):
        write_record(runs, "fewshot", "coop", "dtd", shots, 1, acc)
    write_record(runs, "fewshot", "vpt", "dtd", 2, 1, 42.0)
    assert report_gains(runs) == (4, {"coop": {"dtd": 6.5}})
    assert report_gains(runs, shots=2) == (2, {"coop": {"dtd": 3.0}, "vpt": {"dtd": 2.0}})
    assert report_gains(runs, baseline="vpt") == (2, {"coop": {"dtd": 1.0}, "zeroshot": {"dtd": -2.0}})
    with pytest.raises(UptError, match="No method has 8-shot results beside zeroshot"):
        report_gains(runs, shots=8)


def test_a_failing_dataset_is_reported_and_the_others_kept(tmp_path, capsys):
    flowers = shared_path("data", "flowers5")
    one = tmp_path / "one-per-class"
    for cls in ("daisy", "rose", "tulip"):
        (one / cls).mkdir(parents=True)
        shutil.copy(sorted((flowers / cls).iterdir())[0], one / cls)
    out = tmp_path / "analysis"
    assert main(["analyze", "variance", "--dataset", f"folder:{flowers},folder:{one}", "--backbone", "tiny",
                 "--per-class", "4", "--formats", "png", "--out", str(out)]) == 1
    result = json.loads((out / "variance.json").read_text())
    assert [s["dataset"] for s in result["stats"]] == [f"folder:{flowers}"] and result["stats"][0]["n_images"] == 20
    assert [f["dataset"] for f in result["failed"]] == [f"folder:{one}"]
    error = result["failed"][0]["error"]
    assert f"{one / 'daisy'} holds 1 image(s)" in error
    printed = capsys.readouterr()
    assert f"warning: folder:{one} failed and is left out: {error}" in printed.err.splitlines()
    assert "flowers5" in printed.out and sorted(p.name for p in out.iterdir()) == ["variance.json", "variance.png"]

    with pytest.raises(UptError, match="No dataset could be analysed: folder:"):
        analyze_variance([f"folder:{one}"], tmp_path / "none", "tiny", None, per_class=4)
