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
