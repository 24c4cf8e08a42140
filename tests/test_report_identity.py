"""``upt report`` keeps apart what is not comparable and never drops a record silently: runs that
differ in data folder, backbone or weights are different rows; duplicates, unreadable files and
records no table uses are listed under "Not in the tables" with the reason."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from test_report import write_record
from upt.report import build_report, gather


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_runs_of_other_data_backbones_or_weights_are_never_merged(tmp_path):
    root = tmp_path / "runs"
    # Three ImageNet zero-shot runs, same seed: two data roots, two backbones. All three are results.
    write_record(root / "a", "fewshot", "zeroshot", "imagenet", 0, 1, 10.0, data_dir="/data1/imagenet")
    write_record(root / "b", "fewshot", "zeroshot", "imagenet", 0, 1, 0.0, data_dir="/data2/imagenet")
    write_record(root / "c", "fewshot", "zeroshot", "imagenet", 0, 1, 0.1, backbone="tiny", pretrained=None,
                 data_dir="/data1/imagenet")
    for seed, acc in ((1, 20.0), (2, 22.0)):
        write_record(root / "a", "fewshot", "coop", "imagenet", 4, seed, acc, data_dir="/data1/imagenet")
        write_record(root / "c", "fewshot", "coop", "imagenet", 4, seed, acc / 10, backbone="tiny", pretrained=None,
                     data_dir="/data1/imagenet")
    assert len(gather(root).records) == 7 and gather(root).skipped == []

    build_report(root, figures=False)
    md = (root / "report" / "report.md").read_text()
    table = md.split("### 4 shots\n\n", 1)[1].split("\n\n")
    assert table[0] == ("_Backbones and weights differ by row (`method [backbone, weights]`), never averaged "
                        "together; precision `not recorded`; data: `/data1` (imagenet); `/data2` (imagenet) (one "
                        "dataset read from several folders: rows say which, `[data ROOT]`)._")
    assert table[1].splitlines()[2:] == [
        "| zeroshot [ViT-B-16, openai, data /data1] (same for every K) | 10.00 | 10.00 |",
        "| zeroshot [ViT-B-16, openai, data /data2] (same for every K) | 0.00 | 0.00 |",
        "| zeroshot [tiny, none, data /data1] (same for every K) | 0.10 | 0.10 |",
        "| coop [ViT-B-16, openai, data /data1] | 21.00 ± 1.00 | 21.00 |",
        "| coop [tiny, none, data /data1] | 2.10 ± 0.10 | 2.10 |"]
    assert "Not in the tables" not in md
    got = {(r["method"], r["backbone"], r["pretrained"], r["data"]): r["mean"]
           for r in _rows(root / "report" / "fewshot.csv") if r["dataset"] == "imagenet"}
    assert got == {("zeroshot [ViT-B-16, openai, data /data1]", "ViT-B-16", "openai", "/data1 (imagenet)"): "10.0",
                   ("zeroshot [ViT-B-16, openai, data /data2]", "ViT-B-16", "openai", "/data2 (imagenet)"): "0.0",
                   ("zeroshot [tiny, none, data /data1]", "tiny", "", "/data1 (imagenet)"): "0.1",
                   ("coop [ViT-B-16, openai, data /data1]", "ViT-B-16", "openai", "/data1 (imagenet)"): "21.0",
                   ("coop [tiny, none, data /data1]", "tiny", "", "/data1 (imagenet)"): "2.1"}


def test_one_setting_keeps_plain_labels_and_a_precision_column_when_precision_varies(tmp_path):
    root = tmp_path / "runs"
    for seed, precision in ((1, "fp16"), (2, "fp32")):
        write_record(root, "fewshot", "coop", "dtd", 1, seed, 50.0 + seed, data_dir="/data/dtd", precision=precision)
        write_record(root, "fewshot", "upt", "dtd", 1, seed, 60.0 + seed, data_dir="/data/dtd", precision="fp16")
    build_report(root, figures=False)
    md = (root / "report" / "report.md").read_text()
    assert ("### 1 shot\n\n_Backbone `ViT-B-16`, weights `openai`; precision per row (Precision column); "
            "data: `/data` (dtd)._\n\n"
            "| Method | Precision | dtd | Average |\n|---|---|---|---|\n"
            "| coop | fp16, fp32 | 51.50 ± 0.50 | 51.50 |\n"
            "| upt | fp16 | 61.50 ± 0.50 | 61.50 |\n") in md


def test_every_record_left_out_is_listed_with_the_reason(tmp_path):
    root = tmp_path / "runs"
    own = write_record(root, "fewshot", "coop", "dtd", 1, 1, 50.0, data_dir="/data/dtd")
    # `upt eval --run` of the run's own test split writes the same result again
    repeat = write_record(root, "fewshot", "coop", "dtd", 1, 1, 50.0, eval_dataset="dtd", data_dir="/data/dtd")
    # a copy of the run folder elsewhere (a re-run with the same identity and another accuracy)
    copy = write_record(root / "rerun", "fewshot", "coop", "dtd", 1, 1, 48.0, data_dir="/data/dtd")
    # a few-shot run evaluated on another dataset: no table shows that
    other = write_record(root, "fewshot", "coop", "dtd", 1, 1, 30.0, eval_dataset="eurosat",
                         data_dir="/data/eurosat")
    broken = root / "fewshot" / "dtd" / "coop" / "2shot" / "seed1" / "results.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"method": "coop"')
    build_report(root, figures=False)

    md = (root / "report" / "report.md").read_text()
    assert "| coop | 50.00 | 50.00 |" in md
    listed = md.split("## Not in the tables\n\n", 1)[1].strip().splitlines()
    assert listed == sorted([
        f"- `{copy}`: same protocol, method, backbone, weights, data, classes, shots and seed as `{own}` "
        "(50.00 there, 48.00 here): a copied or re-run folder; only the first is counted",
        f"- `{repeat}`: repeats `{own}` (an evaluation of the run's own test split), which is counted",
        f"- `{other}`: a few-shot evaluation of eurosat (all classes); few-shot tables use each run's own "
        "results.json",
        f"- `{broken}`: not a upt result record (JSONDecodeError: Expecting ',' delimiter: line 1 column 18 "
        "(char 17))"])
    assert "4 record file(s) not in the tables" in md
    rows = {r["path"]: r for r in _rows(root / "report" / "results.csv")}
    assert set(rows) == {str(p) for p in (own, repeat, copy, other, broken)}
    assert rows[str(own)]["in_tables"] == "yes"
    assert rows[str(copy)]["accuracy"] == "48.0" and rows[str(copy)]["in_tables"].startswith("same protocol")
    assert rows[str(broken)]["in_tables"].startswith("not a upt result record")
    assert rows[str(repeat)]["data_dir"] == "/data/dtd" and rows[str(other)]["eval_data_dir"] == "/data/eurosat"


def test_evaluations_take_the_training_data_folder_and_precision_of_their_run(tmp_path):
    root = tmp_path / "runs"
    write_record(root, "dg", "coop", "imagenet", 16, 1, 70.0, data_dir="/data/imagenet", precision="amp")
    target = write_record(root, "dg", "coop", "imagenet", 16, 1, 60.0, eval_dataset="imagenetv2",
                          data_dir="/other/imagenetv2")
    (record,) = [r for r in gather(root).records if r.path == str(target)]
    assert (record.data_dir, record.eval_data_dir, record.precision) == ("/data/imagenet", "/other/imagenetv2", "amp")
    build_report(root, figures=False)
    md = (root / "report" / "report.md").read_text()
    assert ("_Backbone `ViT-B-16`, weights `openai`; precision `amp`; data: `/data` (imagenet); "
            "`/other` (imagenetv2)._") in md
    assert json.loads(target.read_text())["accuracy"] == 60.0
