"""The README's first command does what the README says it printed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from upt.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
ACCURACY = re.compile(r"^accuracy (\d+\.\d\d)% .* record -> (\S+)$", re.M)


def _first_command_and_its_output() -> tuple[list[list[str]], list[tuple[str, str]]]:
    text = README.read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", text, re.S)
    command = next(body for lang, body in blocks if lang == "bash")
    printed = next(body for lang, body in blocks if lang == "" and ACCURACY.search(body))
    steps = [shlex.split(part) for part in command.strip().split(" && ")]
    return [s[1:] for s in steps if s[0] == "upt"], ACCURACY.findall(printed)


def test_the_quick_start_prints_what_the_readme_shows(tmp_path, monkeypatch, capsys):
    steps, printed = _first_command_and_its_output()
    assert [s[0] for s in steps] == ["data", "train", "train"] and len(printed) == 2
    monkeypatch.chdir(tmp_path)
    for argv in steps:
        assert main(argv) == 0, argv
    seen = ACCURACY.findall(capsys.readouterr().out)
    assert [record for _, record in seen] == [record for _, record in printed]
    (zs_seen, _), (tuned_seen, _) = seen
    (zs_shown, _), (tuned_shown, _) = printed
    assert zs_seen == zs_shown  # inference only: the same on any machine with this torch
    # 200 epochs of SGD: another CPU's float rounding may move an image or two of 144
    assert abs(float(tuned_seen) - float(tuned_shown)) <= 1.4, (tuned_seen, tuned_shown)
    assert float(tuned_seen) > float(zs_seen) > 12.5 + 60


def _python_examples() -> list[str]:
    text = README.read_text()
    section = text[text.index("## From Python\n"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_python_examples_run(tmp_path, monkeypatch, capsys):
    import contextlib
    import io

    from upt.methods import REGISTRY

    examples = _python_examples()
    assert len(examples) == 2
    monkeypatch.chdir(tmp_path)
    printed = []
    for code in examples:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
        printed.append(out.getvalue().splitlines())
    trained = re.fullmatch(r"UPT (\d+\.\d\d)% on 160 test images", printed[0][0])
    assert trained and float(trained.group(1)) > 12.5 + 60  # 8 colours, 20 test images each
    scores, predicted, methods, count = printed[1]
    accuracy, macro_f1 = scores.split()
    assert f"{float(accuracy):.2f}" == trained.group(1)  # evaluating the run again gives the same number
    assert 0 < float(macro_f1) <= 100
    assert predicted in {"red", "green", "blue", "yellow", "purple", "orange", "white", "black"}
    assert methods == str(list(REGISTRY))
    import upt

    toy = upt.load_backbone("toy", "upt")
    assert count == f"{REGISTRY['coop'].count_parameters(REGISTRY['coop'].Config(), toy, 8)} trainable parameters"


def test_the_public_api_is_importable_light_and_documented():
    import subprocess
    import sys

    names = ["RunConfig", "run_config", "train", "evaluate", "image_folder", "list_methods", "Predictor",
             "load_backbone", "build_method", "load_dataset"]
    code = ("import sys, upt; assert 'torch' not in sys.modules; "
            f"objs = [getattr(upt, n) for n in {names!r}]; "
            "assert all(o.__doc__ and o.__doc__.strip() for o in objs); print(sorted(upt.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sorted([*names, "__version__"]))
