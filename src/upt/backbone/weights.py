"""Weights: the packaged weights of built-ins, and a fast, clear failure when open_clip would need
to download weights on a machine that cannot."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from torch import nn

from upt.backbone.configs import BUILTIN_CONFIGS, pretrained_config
from upt.errors import UptError


def load_packaged(model: nn.Module, name: str, source: str, is_file: bool = False) -> None:
    """Put a built-in's weights into ``model``: the packaged ``upt/assets/<source>``, or a file
    written by ``upt pretrain-toy`` (``is_file``)."""
    from importlib import resources

    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    from upt.toy.pretrain import restore_state

    asset = Path(source) if is_file else resources.files("upt") / "assets" / source
    if not asset.is_file():
        raise UptError(f"The packaged weights of '{name}' ({source}) are missing from this installation; "
                       f"reinstall upt, or rebuild them with `upt pretrain-toy --out FILE` and pass --pretrained FILE.")
    try:
        model.load_state_dict(restore_state(model, load_bytes(asset.read_bytes())))
    except (SafetensorError, KeyError, RuntimeError) as exc:
        raise UptError(f"{source} does not hold weights of the '{name}' backbone ({type(exc).__name__}); "
                       "write them with `upt pretrain-toy --out FILE`.") from None


def require_reachable_weights(name: str, pretrained: str | None) -> None:
    """Fail in seconds, saying what to do, when weights must be downloaded and cannot be.

    open_clip would otherwise spend about a minute in download retries on a machine without internet.
    Weights already in the Hugging Face or open_clip cache, local files and proxied connections are
    left to open_clip.
    """
    if pretrained is None or name in BUILTIN_CONFIGS or Path(pretrained).is_file():
        return
    tag = pretrained_config(name, pretrained)
    if not tag or _weights_cached(tag) or os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname if tag.get("hf_hub") \
        else urlparse(tag.get("url", "")).hostname
    if offline or not _reachable(host):
        why = "HF_HUB_OFFLINE is set" if offline else f"{host} cannot be reached (no internet?)"
        raise UptError(f"The weights '{pretrained}' of {name} are not in the local cache and {why}. Offline, use "
                       "--backbone tiny to try the pipeline, or pass --pretrained /path/to/weights-file; or download "
                       "them once on a machine with internet (the Hugging Face cache is then reused).")


def _weights_cached(tag: dict) -> bool:
    """Whether open_clip will find the tag's weights without the network."""
    if tag.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        model_id, filename = os.path.split(tag["hf_hub"])  # "org/model/" -> open_clip's default file names
        names = [filename, filename.rsplit(".", 1)[0] + ".safetensors"] if filename else \
            ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"]
        return any(isinstance(try_to_load_from_cache(model_id, n), str) for n in names)
    url = tag.get("url", "")
    return bool(url) and os.path.isfile(os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url)))


def _reachable(host: str | None, port: int = 443, timeout: float = 3.0) -> bool:
    import socket

    if not host:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


