"""The feature store: image features of a frozen image encoder, computed once and reused.

A sweep evaluates every cell of a frozen-encoder method (zero-shot, linear probe, CoOp, CoCoOp) on
the same test images with the same encoder: the store keeps those features on disk, keyed by
everything they depend on (:func:`feature_key`: backbone, weights, activation, precision, device
type, dataset, split, the image list with each file's size and modification time, transform,
preprocessing, batch size, torch version), so every later method, shot count, seed and ``upt
eval`` reads them instead of encoding again.

Exactness: what is stored is the backbone's raw image features (``backbone.vision.encode_images``,
cast to fp32 without loss), and every method's own features are derived from them
(:meth:`~upt.methods.base.PromptMethod.image_features`) exactly as its ``encode_image`` derives
them, so logits with and without the store are identical (tested). Only methods whose image
encoder is frozen and whose ``encode_image`` is the base one are served (:func:`served`): never
VPT, MaPLe, UPT or anything else with prompted or adapted image features.

On disk: one safetensors file per entry, ``<store>/<key hash>.safetensors``, holding the features,
the labels and, as metadata, the full key and a SHA-256 of the tensors. An entry whose key or hash
does not match (stale, damaged, truncated) is never used: it is recomputed and replaced. Entries are
written to a temporary name and renamed, so concurrent sweep workers and cluster jobs on a shared
file system never read a half-written one (two writers of one entry write the same bytes).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from upt.errors import UptError

log = logging.getLogger(__name__)
FORMAT = 1  # bump when what an entry holds changes: older entries then never match


def default_store() -> Path:
    """The user cache: ``$UPT_CACHE/features``, else ``$XDG_CACHE_HOME/upt/features``, else ``~/.cache/upt/features``."""
    if os.environ.get("UPT_CACHE"):
        return Path(os.environ["UPT_CACHE"]) / "features"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "upt" / "features"


def store_path(setting: str | None) -> Path | None:
    """Where ``compute.feature_store`` puts features: None when it is ``off``; the user cache for ``auto``."""
    if setting is None or setting == "off":
        return None
    return default_store() if setting == "auto" else Path(setting).expanduser()


def served(method) -> bool:
    """Whether stored features can stand in for the image encoder of ``method`` (an instance or a class):
    frozen, and derived by the base ``encode_image`` (raw backbone features through ``image_features``)."""
    from upt.methods.base import PromptMethod

    cls = method if isinstance(method, type) else type(method)
    return bool(method.frozen_image_encoder) and cls.encode_image is PromptMethod.encode_image


def _images_digest(samples: Sequence) -> str:
    """SHA-256 over every (path, label, size, modification time): a changed file changes the key."""
    h = hashlib.sha256()
    for s in samples:
        try:
            st = os.stat(s.path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{s.path}\t{s.label}\t{stamp}\n".encode())
    return h.hexdigest()


def feature_key(backbone, precision: str, dataset: str, split: str, samples: Sequence, transform: str,
                batch_size: int) -> dict:
    """Everything the features of ``samples`` depend on, as plain data."""
    info = backbone.describe()
    weights = info.get("pretrained")
    if weights and os.path.isfile(str(weights)):  # a weights file: its identity is its size and time
        st = os.stat(str(weights))
        weights = f"{weights}@{st.st_size}:{st.st_mtime_ns}"
    return {
        "format": FORMAT, "backbone": info.get("name"), "pretrained": weights, "quick_gelu": info.get("quick_gelu"),
        "precision": precision, "device": backbone.device.type, "dataset": dataset, "split": split,
        "n_images": len(samples), "images": _images_digest(samples), "transform": transform,
        "preprocess": backbone.preprocess.to_dict(), "batch_size": batch_size, "torch": torch.__version__,
    }


def _key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def _tensor_digest(features: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(features.contiguous().numpy().tobytes())
    h.update(labels.contiguous().numpy().tobytes())
    return h.hexdigest()


class FeatureStore:
    """A folder of feature entries (see the module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: dict) -> Path:
        return self.root / f"{_key_hash(key)}.safetensors"

    def get(self, key: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The entry's (features, labels), or None when absent, stale or damaged (never a wrong one)."""
        from safetensors import safe_open

        path = self.path(key)
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                features, labels = f.get_tensor("features"), f.get_tensor("labels")
        except Exception as exc:  # noqa: BLE001 - any unreadable entry is recomputed, never used
            log.warning("feature store entry %s is damaged (%s); recomputing it", path, exc)
            return None
        if meta.get("key") != json.dumps(key, sort_keys=True) or len(features) != key["n_images"]:
            log.warning("feature store entry %s does not match its key; recomputing it", path)
            return None
        if meta.get("sha256") != _tensor_digest(features, labels):
            log.warning("feature store entry %s fails its checksum; recomputing it", path)
            return None
        return features, labels

    def put(self, key: dict, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Write an entry atomically (a failure to write is logged; the run goes on without it)."""
        from upt.engine.checkpoint import save_tensors

        features, labels = features.detach().float().cpu().contiguous(), labels.detach().long().cpu().contiguous()
        meta = {"key": json.dumps(key, sort_keys=True), "sha256": _tensor_digest(features, labels),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        try:
            save_tensors(self.path(key), {"features": features, "labels": labels}, metadata=meta)
        except UptError as exc:
            log.warning("feature store: %s; going on without storing", exc)

    def entries(self) -> list[dict]:
        """Every entry: its file, size in bytes and key (damaged ones with ``"damaged": True``)."""
        from safetensors import safe_open

        out = []
        for path in sorted(self.root.glob("*.safetensors")) if self.root.is_dir() else []:
            row = {"path": str(path), "bytes": path.stat().st_size}
            try:
                with safe_open(str(path), framework="pt") as f:
                    meta = f.metadata() or {}
                row.update(key=json.loads(meta["key"]), created=meta.get("created"))
            except Exception:  # noqa: BLE001 - listed as damaged, removed by clear
                row["damaged"] = True
            out.append(row)
        return out

    def clear(self) -> tuple[int, int]:
        """Remove every entry (and leftover temporary files); returns (files, bytes) freed."""
        files = bytes_ = 0
        if self.root.is_dir():
            for path in self.root.iterdir():
                if path.is_file() and (path.suffix == ".safetensors" or path.name.startswith(".")):
                    bytes_ += path.stat().st_size
                    path.unlink()
                    files += 1
        return files, bytes_


@torch.no_grad()
def raw_features(method, loader, precision) -> tuple[torch.Tensor, torch.Tensor]:
    """The backbone's raw image features (fp32) and labels of every batch of ``loader``."""
    feats, labels = [], []
    method.eval()
    with precision.autocast():
        for images, y, *_ in loader:
            feats.append(method.backbone.vision.encode_images(images.to(method.backbone.device)).float())
            labels.append(y)
    if not feats:
        raise UptError("No images to encode.")
    return torch.cat(feats).cpu(), torch.cat(labels).long().cpu()


def store_for(method, cfg) -> FeatureStore | None:
    """The store that serves ``method`` in run ``cfg``, or None: the store is off, the method's image
    encoder is prompted or adapted, the run shrinks cached images (``data.cache_short_side``), or the
    process is one of several (sharded work)."""
    from upt.engine import distributed as dist

    root = store_path(cfg.compute.feature_store)
    if root is None or not served(method) or cfg.data.cache_short_side is not None or dist.world_size() > 1:
        return None
    return FeatureStore(root)


def stored_features(method, samples: Sequence, dataset: str, split: str, transform: str, cfg, precision,
                    store: FeatureStore) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw features of ``samples`` (split ``split`` of ``dataset``) under a deterministic ``transform``: from
    ``store`` when it holds them, else encoded now (and stored). Shapes (N, D) fp32 and (N,), on the CPU."""
    from upt.engine.loaders import image_loader

    key = feature_key(method.backbone, precision.name, dataset, split, samples, transform,
                      cfg.data.eval_batch_size)
    hit = store.get(key)
    if hit is not None:
        log.info("%s features of %d images from the feature store", split, len(samples))
        return hit
    loader = image_loader(samples, method.backbone.preprocess, transform, False, cfg.data.eval_batch_size,
                          cfg.data.num_workers)
    features, labels = raw_features(method, loader, precision)
    store.put(key, features, labels)
    return features, labels


@torch.no_grad()
def encoded(method, samples: Sequence, split: str, transform: str, cfg, precision
            ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """What :func:`upt.engine.loaders.encode_all` returns for ``samples`` (the method's image features in
    fp32 and the labels, on its device), through the store; None when the store cannot serve
    (:func:`store_for`): the caller then encodes the images itself."""
    store = store_for(method, cfg)
    if store is None:
        return None
    raw, labels = stored_features(method, samples, cfg.dataset, split, transform, cfg, precision, store)
    device = method.backbone.device
    with precision.autocast():
        return method.image_features(raw.to(device)).float(), labels.to(device)
