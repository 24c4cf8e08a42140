"""Share run folders on the Hugging Face Hub, and load them back by name.

``push_run(run, "user/name")`` uploads what loading a run needs (``prompt.safetensors``, ``upt.json``,
``config.yaml``, ``results.json``) with a generated model card (``README.md``: YAML front matter,
the run's method, backbone, data, accuracy per class, the command that reproduces it, the license).
A run is then named ``hf-hub:user/name`` (or ``hf-hub:user/name@revision``) wherever a run folder
is taken, as open_clip names hub models: :func:`resolve_run` downloads the repository snapshot with
``huggingface_hub.snapshot_download`` (into the usual Hugging Face cache; ``HF_HUB_OFFLINE=1`` uses
the cached copy only) and returns its local folder.
"""

from __future__ import annotations

import importlib
import json
import shutil
import tempfile
from pathlib import Path

from upt.engine.checkpoint import META_FILE, PROMPT_FILE, read_json
from upt.errors import UptError

HUB_PREFIX = "hf-hub:"
PUSH_FILES = (PROMPT_FILE, META_FILE, "config.yaml", "results.json")
CARD_FILE = "README.md"
DEFAULT_LICENSE = "mit"
LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN"


def is_hub_run(run: str | Path) -> bool:
    """Whether ``run`` names a run on the Hugging Face Hub (``hf-hub:user/name``)."""
    return isinstance(run, str) and run.startswith(HUB_PREFIX)


def _check_repo_id(repo_id: str, given: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise UptError(f"'{given}' is not a Hugging Face Hub model name; write user/name.") from exc


def resolve_run(run: str | Path) -> Path:
    """The local folder of a run: ``run`` itself, or the downloaded snapshot of ``hf-hub:user/name[@revision]``."""
    if not is_hub_run(run):
        return Path(run)
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    import upt

    repo_id, _, revision = run[len(HUB_PREFIX):].partition("@")
    _check_repo_id(repo_id, run)
    try:
        folder = Path(snapshot_download(repo_id, revision=revision or None, allow_patterns=[*PUSH_FILES, CARD_FILE],
                                        library_name="upt", library_version=upt.__version__))
    except RevisionNotFoundError as exc:
        raise UptError(f"The Hugging Face Hub model {repo_id} has no revision '{revision}'.") from exc
    except RepositoryNotFoundError as exc:
        raise UptError(f"The Hugging Face Hub has no model {repo_id} that you can read (if it is private or gated, "
                       f"{LOGIN_HINT}).") from exc
    except LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
        raise UptError(f"{run} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}; "
                       "download it once with a network connection.") from exc
    except HfHubHTTPError as exc:
        raise UptError(f"The Hugging Face Hub refused to send {run} ({_first_line(exc)}).") from exc
    except _network_errors() as exc:
        raise UptError(f"Cannot download {run} ({_first_line(exc)}); check the network connection.") from exc
    if not (folder / META_FILE).is_file():
        raise UptError(f"{run} holds no upt run (no {META_FILE}); name a repository written by `upt push`.")
    return folder


def _network_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a failed connection raises: OSError, and the transport errors of the HTTP client
    huggingface_hub uses (``httpx2``/``httpx``; ``requests``' derive from OSError)."""
    errors: list[type[BaseException]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


def _cell(value: object) -> str:
    """A value for a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def model_card(run_dir: str | Path, repo_id: str, license: str = DEFAULT_LICENSE) -> str:
    """The model card (``README.md``) of a run folder for the Hub repository ``repo_id``."""
    from huggingface_hub import ModelCardData

    from upt.engine.rundir import read_meta

    run_dir = Path(run_dir)
    meta, results = read_meta(run_dir), _read_results(run_dir)
    backbone, method = meta["backbone"], meta["method"]
    weights = backbone.get("pretrained") or "none (random)"
    data = ModelCardData(library_name="upt", license=license, pipeline_tag="image-classification",
                         tags=list(dict.fromkeys(["upt", "clip", "open_clip", "prompt-tuning", "few-shot", method])),
                         base_model=base_model_repo(backbone["name"], backbone.get("pretrained")))
    act = {True: "QuickGELU", False: "GELU"}.get(backbone.get("quick_gelu"), "as recorded")
    rows = [
        ("Method", f"`{method}`, config `{json.dumps(meta['method_config'])}`"),
        ("Backbone", f"{backbone['name']} ({act}), weights {weights}"),
        ("Dataset", f"`{results['dataset']}` (classes: {results['classes']}, protocol {results.get('protocol')})"),
        ("Shots", f"{results['shots']} per class"),
        ("Seed", results["seed"]),
        ("Accuracy", f"{results['accuracy']:.2f} % on the {results.get('split', 'test')} split of "
                     f"`{results['eval_dataset']}` ({results['n_images']} images), macro-F1 {results['macro_f1']:.2f}"),
        ("Trainable parameters", f"{results['trainable_parameters']:,}" if "trainable_parameters" in results else "-"),
        ("Prompt template", f"`{meta['template']}`"),
        ("upt version", meta.get("versions", {}).get("upt", "-")),
    ]
    per_class = [f"| {_cell(r['class'])} | {r['accuracy']:.2f} | {r['n_images']} |"
                 for r in results.get("per_class_accuracy", [])]
    name = repo_id.split("/")[-1]
    lines = [
        "---", data.to_yaml(), "---", "",
        f"# {method} prompts for {backbone['name']} on {results['dataset']} ({results['shots']} "
        f"shot{'' if results['shots'] == 1 else 's'} per class, seed {results['seed']})", "",
        f"Prompt tuning of a frozen open_clip CLIP, trained with `upt`. This repository holds the trained tensors "
        f"only (`{PROMPT_FILE}`), with `{META_FILE}`, `config.yaml` and `results.json`; the CLIP weights come from "
        "open_clip.", "",
        "| | |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in rows), "",
        "## Use", "",
        "```python", "from upt import Predictor", "",
        f'predictor = Predictor("{HUB_PREFIX}{repo_id}")',
        'for row in predictor.predict(["photo.jpg"], topk=3):', '    print(row["top"])', "```", "",
        "```bash", f"upt predict --run {HUB_PREFIX}{repo_id} photo.jpg --topk 3",
        f"upt eval --run {HUB_PREFIX}{repo_id} --out eval.json", "```", "",
        "## Per-class accuracy", "",
        "| class | accuracy (%) | images |", "|---|---:|---:|", *per_class, "",
        "## Reproduce", "",
        "`config.yaml` is the run's fully resolved config; with it, this command trains the same run "
        f"(the dataset must be where `config.yaml` says: `{results['dataset']}`):", "",
        "```bash", f"upt train --config config.yaml --out runs/{name}", "```", "",
        "## License", "",
        f"The trained prompts are released under the `{license}` license."
        + (f" The CLIP weights they adapt ({backbone['name']}, {weights}) keep the license of their publisher, as "
           "open_clip lists it." if backbone.get("pretrained") else ""), "",
    ]
    return "\n".join(lines)


def _read_results(run_dir: Path) -> dict:
    path = run_dir / "results.json"
    if not path.exists():
        raise UptError(f"{path} is missing; a run is shared once training has finished and written its results.")
    results = read_json(path)
    need = ("dataset", "eval_dataset", "classes", "shots", "seed", "accuracy", "macro_f1", "n_images")
    missing = [k for k in need if not isinstance(results, dict) or k not in results]
    if missing:
        raise UptError(f"{path} lacks {', '.join(missing)}; the file is damaged: restore it or train the run again.")
    return results


def base_model_repo(name: str, pretrained: str | None) -> str | None:
    """The Hub repository of the CLIP weights a run adapts, where open_clip names one."""
    from upt.backbone.configs import pretrained_config

    if name.startswith(HUB_PREFIX):
        return name[len(HUB_PREFIX):]
    try:
        hub = pretrained_config(name, pretrained).get("hf_hub")
    except UptError:
        return None
    return hub.rstrip("/") if hub else None


def build_upload_folder(run_dir: str | Path, dest: str | Path, repo_id: str, license: str = DEFAULT_LICENSE) -> list[str]:
    """Copy what loading the run needs into ``dest`` and write its model card; returns the file names."""
    from upt.engine.rundir import read_run_config

    _check_repo_id(repo_id, repo_id)
    run_dir = Path(run_dir)
    read_run_config(run_dir)  # a damaged or foreign folder fails here, naming the file
    card = model_card(run_dir, repo_id, license)
    for name in PUSH_FILES:
        if not (run_dir / name).is_file():
            raise UptError(f"{run_dir / name} is missing; push a finished run folder.")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in PUSH_FILES:
        shutil.copyfile(run_dir / name, dest / name)
    (dest / CARD_FILE).write_text(card, encoding="utf-8")
    return [*PUSH_FILES, CARD_FILE]


def push_run(run_dir: str | Path, repo_id: str, private: bool = False, license: str = DEFAULT_LICENSE,
             token: str | None = None) -> str:
    """Upload a run folder to the Hub model repository ``repo_id`` (created when missing); returns its URL.

    Raises:
        UptError: a bad name or run folder, no token, or a Hub that cannot be reached or refuses.
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    import upt

    token = token or get_token()
    with tempfile.TemporaryDirectory(prefix="upt-push-") as staging:
        build_upload_folder(run_dir, staging, repo_id, license)
        if not token:
            raise UptError(f"Pushing to the Hugging Face Hub needs a token: {LOGIN_HINT}.")
        api = HfApi(token=token, library_name="upt", library_version=upt.__version__)
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=staging, commit_message=f"Upload upt run {Path(run_dir).name}")
        except HfHubHTTPError as exc:
            raise UptError(f"The Hugging Face Hub refused the upload to {repo_id} ({_first_line(exc)}); check the "
                           f"name and that your token may write to it ({LOGIN_HINT}).") from exc
        except _network_errors() as exc:
            raise UptError(f"Cannot reach the Hugging Face Hub to push {repo_id} ({_first_line(exc)}); check the "
                           "network connection (and that HF_HUB_OFFLINE is not set).") from exc
    return str(url)
