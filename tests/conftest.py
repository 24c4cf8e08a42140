import os
import tempfile

import pytest
import torch

from upt.backbone import load_backbone

# Runs keep frozen-encoder features in the user cache by default; the tests keep theirs in a
# folder of their own, never in the user's.
os.environ["UPT_CACHE"] = tempfile.mkdtemp(prefix="upt-test-cache-")


@pytest.fixture(scope="session")
def tiny():
    """The built-in tiny CLIP (random weights, 32-px images), shared by the whole session."""
    torch.manual_seed(0)
    return load_backbone("tiny", None)


@pytest.fixture(scope="session")
def vit_b16():
    """A full-size ViT-B-16 with random weights (no download)."""
    torch.manual_seed(0)
    return load_backbone("ViT-B-16", None)
