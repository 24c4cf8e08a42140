"""``upt report``: tables equal the statistics recomputed here from the result files, figures are
valid PNG, PDF and SVG files, base-to-new and transfer tables follow their protocols, missing cells
stay missing, and every table names the backbone, weights, precision and data it comes from."""

from __future__ import annotations

import csv
import json
import statistics
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from test_sweep import _sweep, make_sweep_root, photo_folders
from upt.cli import main
from upt.report import build_report

PNG = b"\x89PNG\r\n\x1a\n"
FORMATS = ("pdf", "png", "svg")


def write_record(root: Path, protocol: str, method: str, dataset: str, shots: int, seed: int, accuracy: float,
                 classes: str = "all", eval_dataset: str | None = None, backbone: str = "ViT-B-16",
                 pretrained: str | None = "openai", data_dir: str | None = None, precision: str | None = None) -> Path:
    """A minimal result record: the run's results.json, or an eval/*.json when ``eval_dataset`` is given.

    ``data_dir`` is recorded as ``split_info.dataset_dir`` (the evaluated dataset's folder), as runs do.
    """
    run = root / protocol / dataset / method / f"{shots}shot" / f"seed{seed}"
    record = {"method": method, "dataset": dataset, "eval_dataset": eval_dataset or dataset, "protocol": protocol,
              "classes": classes, "shots": shots, "seed": seed, "backbone": backbone, "pretrained": pretrained,
              "accuracy": accuracy, "macro_f1": accuracy}
    if data_dir is not None:
        record["split_info"] = {"dataset": eval_dataset or dataset, "dataset_dir": data_dir}
    if precision is not None:
        record["precision"] = precision
    path = run / "eval" / f"{eval_dataset}-{classes}.json" if eval_dataset else run / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def figure_names(*stems: str) -> list[str]:
    """Every file a figure is written as by default: PDF, PNG and SVG."""
    return sorted(f"{stem}.{fmt}" for stem in stems for fmt in FORMATS)


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG, path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 100 and im.height > 100


@pytest.fixture(scope="module")
def fewshot_report(tmp_path_factory):
    swept = make_sweep_root(tmp_path_factory)
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(swept["root"]), "--out", str(out)]) == 0
    return swept["root"], out


def recompute(root: Path, stdev) -> dict[tuple, tuple[float, float, int]]:
    by_cell: dict[tuple, list[float]] = defaultdict(list)
    for path in root.rglob("results.json"):
        r = json.loads(path.read_text())
        by_cell[(r["method"], r["dataset"], r["shots"])].append(r["accuracy"])
    return {k: (statistics.fmean(v), stdev(v), len(v)) for k, v in by_cell.items()}


def test_fewshot_table_equals_recomputed_statistics(fewshot_report):
    root, out = fewshot_report
    expected = recompute(root, statistics.pstdev)  # the default: population std (ddof=0)
    rows = read_csv(out / "fewshot.csv")
    cells = {(r["method"], r["dataset"], int(r["shots"])): r for r in rows if r["dataset"] != "average"}
    assert set(cells) == set(expected) and len(expected) == 8
    for key, (mean, std, n) in expected.items():
        row = cells[key]
        assert float(row["mean"]) == pytest.approx(mean, abs=1e-4)
        assert float(row["std"]) == pytest.approx(std, abs=1e-4)
        assert (int(row["n_seeds"]), row["seeds"], row["status"]) == (n, "1 2", "ok")
    datasets = sorted({k[1] for k in expected})
    for r in (r for r in rows if r["dataset"] == "average"):
        means = [expected[(r["method"], d, int(r["shots"]))][0] for d in datasets]
        assert float(r["mean"]) == pytest.approx(statistics.fmean(means), abs=1e-4)

    md = (out / "report.md").read_text()
    assert "ddof=0" in md and "### 1 shot\n" in md and "### 2 shots\n" in md
    header = next(line for line in md.splitlines() if line.startswith("| Method |"))
    order = [h.strip() for h in header.strip("|").split("|")][1:-1]
    full = {Path(d.split(":", 1)[1]).name: d for d in datasets}
    for method in ("coop", "vpt"):
        for shots in (1, 2):
            parts = [f"{expected[(method, full[n], shots)][0]:.2f} ± {expected[(method, full[n], shots)][1]:.2f}"
                     for n in order]
            avg = statistics.fmean(expected[(method, full[n], shots)][0] for n in order)
            assert f"| {method} | {' | '.join(parts)} | {avg:.2f} |" in md


def test_sample_std_on_request(fewshot_report, tmp_path):
    root, _ = fewshot_report
    build_report(root, tmp_path, std="sample", figures=False)
    expected = recompute(root, statistics.stdev)
    for row in read_csv(tmp_path / "fewshot.csv"):
        if row["dataset"] != "average":
            assert float(row["std"]) == pytest.approx(expected[(row["method"], row["dataset"], int(row["shots"]))][1],
                                                      abs=1e-4)
    assert "ddof=1" in (tmp_path / "report.md").read_text()


def test_figures_are_valid_files_in_every_format(fewshot_report):
    _, out = fewshot_report
    names = sorted(p.name for p in (out / "figures").iterdir())
    assert names == figure_names("fewshot-average", "fewshot-cifar10", "fewshot-flowers5", "fewshot")
    for name in names:
        assert_figure(out / "figures" / name)


def assert_figure(path: Path) -> None:
    """A valid PNG (at 200 dpi or more), PDF or SVG file."""
    if path.suffix == ".png":
        assert_png(path)
        with Image.open(path) as im:
            assert round(im.info["dpi"][0]) >= 200, (path, im.info)
    elif path.suffix == ".pdf":
        data = path.read_bytes()
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF"), path
    else:
        assert ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg", path


def test_every_table_names_backbone_weights_precision_and_data(fewshot_report):
    root, out = fewshot_report
    flowers, cifar = (json.loads(next((root / "fewshot" / d).rglob("results.json")).read_text())
                      for d in ("flowers5", "cifar10"))
    assert (flowers["backbone"], flowers["pretrained"], flowers["precision"]) == ("tiny", None, "fp32")
    roots = sorted((str(Path(r["split_info"]["dataset_dir"]).parent), Path(r["split_info"]["dataset_dir"]).name)
                   for r in (flowers, cifar))
    line = ("_Backbone `tiny`, weights `none (random init)`; precision `fp32`; data: "
            + "; ".join(f"`{parent}` ({name})" for parent, name in roots) + "._")
    md = (out / "report.md").read_text()
    for shots in ("1 shot", "2 shots"):
        assert f"### {shots}\n\n{line}\n\n| Method |" in md
    rows = read_csv(out / "fewshot.csv")
    assert {(r["backbone"], r["pretrained"], r["precision"]) for r in rows} == {("tiny", "", "fp32")}


def test_missing_cells_are_shown_missing_never_filled(tmp_path):
    root = tmp_path / "runs"
    for d, acc in (("dtd", 50.0), ("eurosat", 70.0)):
        for seed in (1, 2):
            write_record(root, "fewshot", "coop", d, 1, seed, acc + seed)
    write_record(root, "fewshot", "coop", "dtd", 2, 1, 60.0)  # eurosat 2-shot absent; one seed only
    for seed, (b, n) in enumerate(((80.0, 60.0), (82.0, 62.0)), 1):
        write_record(root, "base2new", "coop", "dtd", 16, seed, b, classes="base")
        write_record(root, "base2new", "coop", "dtd", 16, seed, n, classes="new", eval_dataset="dtd")
    write_record(root, "base2new", "coop", "eurosat", 16, 1, 90.0, classes="base")  # its new-class eval is absent
    write_record(root, "dg", "coop", "imagenet", 16, 1, 70.0)
    write_record(root, "dg", "coop", "imagenet", 16, 1, 60.0, eval_dataset="imagenetv2")
    write_record(root, "dg", "upt", "imagenet", 16, 1, 71.0)
    write_record(root, "dg", "upt", "imagenet", 16, 1, 65.0, eval_dataset="imagenet_r")

    written = build_report(root)
    md = (root / "report" / "report.md").read_text()
    assert "| coop | 51.50 ± 0.50 | 71.50 ± 0.50 | 61.50 |" in md
    assert "| coop | 60.00 (n=1) | missing | missing (1/2) |" in md
    assert "| coop | 81.00 ± 1.00 | 61.00 ± 1.00 | 69.59 |" in md  # dtd: H of the mean base and new
    assert "| coop | 90.00 (n=1) | missing | missing |" in md  # eurosat
    assert "| coop | 85.50 | missing (1/2) | missing |" in md  # the average is not filled in
    assert "| coop | 70.00 | 60.00 | missing | missing |" in md  # dg: imagenet_r absent
    assert "| upt | 71.00 | missing | 65.00 | missing |" in md
    rows = read_csv(root / "report" / "fewshot.csv")
    hole = next(r for r in rows if (r["dataset"], r["shots"]) == ("eurosat", "2"))
    assert (hole["mean"], hole["std"], hole["n_seeds"], hole["status"]) == ("", "", "0", "missing")
    avg = next(r for r in rows if (r["dataset"], r["shots"]) == ("average", "2"))
    assert (avg["mean"], avg["status"]) == ("", "missing (1/2 datasets)")
    b2n = read_csv(root / "report" / "base2new.csv")
    assert next(r for r in b2n if (r["dataset"], r["eval"]) == ("dtd", "H"))["mean"] == str(round(2 * 81 * 61 / 142, 4))
    assert sorted(p.name for p in written["figures"]) == figure_names(
        "base2new", "dg", "fewshot-average", "fewshot-dtd", "fewshot-eurosat", "fewshot")
    for path in written["figures"]:
        assert_figure(path)


def test_base2new_and_dg_sweeps_report_their_protocols(tmp_path_factory, tmp_path):
    photos = photo_folders(tmp_path_factory)
    root = tmp_path / "runs"
    common = ["--methods", "coop", "--datasets", photos["flowers5"], "--shots", "1", "--backbone", "tiny",
              "--epochs", "1", "--set", "data.num_workers=0", "--out", str(root)]
    assert _sweep("--protocol", "base2new", "--seeds", "1,2", *common)[0] == 0
    assert _sweep("--protocol", "dg", "--targets", photos["cifar10"], "--seeds", "1", *common)[0] == 0
    build_report(root, tmp_path / "report")

    runs = sorted((root / "base2new/flowers5/coop/1shot").iterdir())
    base = [json.loads((r / "results.json").read_text()) for r in runs]
    new = [json.loads(next((r / "eval").glob("*.json")).read_text()) for r in runs]
    assert {b["classes"] for b in base} == {"base"} and {n["classes"] for n in new} == {"new"}
    b, n = statistics.fmean(x["accuracy"] for x in base), statistics.fmean(x["accuracy"] for x in new)
    got = {r["eval"]: r for r in read_csv(tmp_path / "report" / "base2new.csv") if r["dataset"] == photos["flowers5"]}
    assert float(got["base"]["mean"]) == pytest.approx(b, abs=1e-4)
    assert float(got["new"]["mean"]) == pytest.approx(n, abs=1e-4)
    assert float(got["H"]["mean"]) == pytest.approx(2 * b * n / (b + n), abs=1e-4)

    dg_run = root / "dg/flowers5/coop/1shot/seed1"
    target = json.loads(next((dg_run / "eval").glob("*.json")).read_text())
    assert (target["eval_dataset"], target["protocol"]) == (photos["cifar10"], "dg")
    dg = {r["eval"]: r for r in read_csv(tmp_path / "report" / "dg.csv")}
    assert float(dg[photos["cifar10"]]["mean"]) == pytest.approx(target["accuracy"], abs=1e-4)
    assert float(dg["source"]["mean"]) == pytest.approx(
        json.loads((dg_run / "results.json").read_text())["accuracy"], abs=1e-4)
    for name in figure_names("base2new", "dg"):
        assert_figure(tmp_path / "report" / "figures" / name)
