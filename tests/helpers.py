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
