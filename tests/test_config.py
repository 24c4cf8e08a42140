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
    top_backbones = data.pop("backbones", {})
    default = data.get("protocol", "fewshot")

    def over(base: dict, section: dict) -> dict:
        return {**base, **{k: {**base.get(k, {}), **v} if isinstance(v, dict) else v for k, v in section.items()}}

    for protocol, section in [(default, sections.get(default, {})), *sections.items()]:
        section = dict(section)
        datasets = {**top_datasets, **section.pop("datasets", {})}
        tiny = over(top_backbones.get("tiny", {}), section.pop("backbones", {}).get("tiny", {}))
        for dataset, part in [(None, {}), *datasets.items()]:
            given = {"backbone": "tiny", "pretrained": None, "protocol": protocol, **({"dataset": dataset} if dataset else {})}
            cfg = _flat(resolve(given, [preset]).to_dict())
            want = _flat(over(over(over(data, section), part), tiny))
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


def test_prompt_depths_fit_the_small_backbones_through_their_presets(tmp_path):
    def depths(method, backbone, protocol="fewshot", overrides=()):
        c = resolve({"method": method, "backbone": backbone, "protocol": protocol}, [], list(overrides)).method_config
        return (c["depth"],) if method == "maple" else (c["depth_text"], c["depth_vision"])

    assert [depths("maple", b, p) for b in ("ViT-B-16", "tiny", "toy") for p in ("fewshot", "dg")] == [
        (9,), (3,), (2,), (2,), (2,), (2,)]
    assert [depths("promptsrc", b, p) for b in ("ViT-B-16", "tiny", "toy") for p in ("base2new", "cross-dataset")] == [
        (9, 9), (3, 3), (2, 2), (2, 2), (2, 3), (2, 3)]
    assert depths("maple", "tiny", overrides=["method_config.depth=1"]) == (1,)  # --set still wins
    preset = tmp_path / "p.yaml"  # a user's preset: top-level, and inside a protocol's section
    preset.write_text("backbones:\n  tiny: {optim: {lr: 0.25}}\n"
                      "protocols:\n  dg:\n    backbones:\n      tiny: {optim: {batch_size: 3}}\n")
    cfg = resolve({"method": "coop", "backbone": "tiny", "protocol": "dg"}, [str(preset)])
    assert (cfg.optim.lr, cfg.optim.batch_size) == (0.25, 3)
    assert resolve({"method": "coop", "backbone": "ViT-B-16"}, [str(preset)]).optim.lr == 0.002


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
