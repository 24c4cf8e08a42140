"""Run configuration: every packaged preset is valid, and the precedence rules hold."""

from __future__ import annotations

from importlib import resources

import pytest

from upt.engine.config import resolve
from upt.engine.presets import load_yaml
from upt.errors import UptError
from upt.sweep import load_grid, plan_jobs

CONFIGS = resources.files("upt") / "configs"
PRESETS = sorted(f"{d.name}/{f.name[:-5]}" for d in CONFIGS.iterdir() if d.is_dir() and d.name != "grids"
                 for f in d.iterdir() if f.name.endswith(".yaml"))
GRIDS = sorted(f"grids/{f.name[:-5]}" for f in (CONFIGS / "grids").iterdir() if f.name.endswith(".yaml"))


def _flat(values: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in values.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.mark.parametrize("preset", PRESETS)
def test_every_packaged_preset_resolves(preset):
    """Every value a preset sets, nested sections and each protocol's section included, reaches the config."""
    data = load_yaml(preset)
    sections = data.pop("protocols", {})
    top_datasets = data.pop("datasets", {})
    default = data.get("protocol", "fewshot")

    def over(base: dict, section: dict) -> dict:
        return {**base, **{k: {**base.get(k, {}), **v} if isinstance(v, dict) else v for k, v in section.items()}}

    for protocol, section in [(default, sections.get(default, {})), *sections.items()]:
        section = dict(section)
        datasets = {**top_datasets, **section.pop("datasets", {})}
        for dataset, part in [(None, {}), *datasets.items()]:
            given = {"backbone": "tiny", "pretrained": None, "protocol": protocol, **({"dataset": dataset} if dataset else {})}
            cfg = _flat(resolve(given, [preset]).to_dict())
            want = _flat(over(over(data, section), part))
            assert {k: cfg[k] for k in want} == want, (protocol, dataset)


@pytest.mark.parametrize("grid", GRIDS)
def test_every_packaged_grid_plans(grid, tmp_path):
    grid = load_grid(grid, {"backbone": "tiny", "pretrained": "none"})
    jobs = plan_jobs(grid, tmp_path)
    assert jobs and all(job.config.method in job.name and job.config.protocol == grid.protocol for job in jobs)


def test_precedence_defaults_method_presets_flags_overrides(tmp_path):
    assert resolve({"method": "coop", "backbone": "tiny"}).optim.batch_size == 32  # default
    assert resolve({"method": "cocoop", "backbone": "tiny"}).optim.batch_size == 1  # the method's paper
    preset = tmp_path / "p.yaml"
    preset.write_text("optim:\n  batch_size: 8\n  lr: 0.5\n")
    cfg = resolve({"method": "cocoop", "backbone": "tiny"}, [str(preset)])
    assert (cfg.optim.batch_size, cfg.optim.lr, cfg.optim.epochs) == (8, 0.5, 10)  # preset over method preset
    cfg = resolve({"method": "cocoop", "backbone": "tiny", "optim": {"lr": 0.1}}, [str(preset)],
                  ["optim.batch_size=2", "method_config.ctx_init="])
    assert (cfg.optim.batch_size, cfg.optim.lr, cfg.method_config["ctx_init"]) == (2, 0.1, "")  # "" is a value


def test_epochs_by_shots():
    assert [resolve({"shots": k, "backbone": "tiny"}).epochs() for k in (1, 2, 4, 8, 16)] == [50, 100, 100, 200, 200]
    assert resolve({"shots": 16, "dataset": "imagenet", "backbone": "tiny"}).epochs() == 50


@pytest.mark.parametrize("override,match", [
    ("optim.lrr=1", r"Unknown key\(s\) \['lrr'\] in section 'optim'"),
    ("lr", "must look like key=value"),
    ("method_config.n_t=0", "n_t and n_v must be positive"),
    ("classes=half", "Unknown classes 'half'"),
    ("precision=fp8", "Unknown precision 'fp8'"),
])
def test_bad_overrides_are_sentences(override, match):
    with pytest.raises(UptError, match=match):
        resolve({"backbone": "tiny"}, [], [override])


def test_a_preset_may_carry_per_dataset_settings(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("optim: {lr: 0.5}\ndatasets:\n  dtd: {optim: {lr: 0.25}}\n"
                      "protocols:\n  base2new:\n    datasets:\n      dtd: {optim: {batch_size: 3}}\n")
    base = {"method": "coop", "backbone": "tiny"}
    assert resolve({**base, "dataset": "eurosat"}, [str(preset)]).optim.lr == 0.5
    assert resolve({**base, "dataset": "dtd"}, [str(preset)]).optim.lr == 0.25
    cfg = resolve({**base, "dataset": "dtd", "protocol": "base2new"}, [str(preset)])
    assert (cfg.optim.lr, cfg.optim.batch_size) == (0.25, 3)
    assert resolve({**base, "dataset": "dtd", "protocol": "base2new"}, [str(preset)], ["optim.batch_size=5"]
                   ).optim.batch_size == 5  # flags and --set still win
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [dtd]\n")
    with pytest.raises(UptError, match="A preset's 'datasets' must map names to settings"):
        resolve({**base, "dataset": "dtd"}, [str(bad)])
