"""Shared test fixtures' building blocks: where the shared photos and parity data live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The project's shared folder (``UPT_SHARED`` overrides; default: ``../shared`` beside the repo)."""
    return Path(os.environ.get("UPT_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under the shared folder, or skip the test with the reason when it is absent."""
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (set UPT_SHARED to the folder holding data/ and parity/)")
    return path


def interrupt_epoch(monkeypatch, n: int = 2):
    """Make the ``n``-th training epoch from now raise KeyboardInterrupt, as a kill mid-run would;
    returns the real ``Trainer.run_epoch`` so a test can restore it before resuming."""
    from upt.engine.train import Trainer

    original, calls = Trainer.run_epoch, {"n": 0}

    def dies(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(Trainer, "run_epoch", dies)
    return original
