"""DataLoaders for a run: seeded per epoch, decoded images reused, features cached when allowed."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, TensorDataset

from upt.data import ImageDataset, build_transform
from upt.data.images import verify_images
from upt.engine.train import epoch_seed

# Few-shot sets are re-read every epoch: keep decoded images when a split is at most this large.
CACHE_LIMIT = 20_000


def image_loader(samples, preprocess, transform: str, train: bool, batch_size: int, workers: int,
                 shuffle: bool = False, seed: int | None = None, cache: bool = False) -> DataLoader:
    """A loader of (image tensor, label, index) batches; ``seed`` fixes order and augmentation."""
    tf = build_transform(preprocess, train=train, name=transform)
    dataset = ImageDataset(samples, tf, cache=cache and len(samples) <= CACHE_LIMIT,
                           cache_size=max(preprocess.size, 256))
    if dataset.cache:
        verify_images(samples, raise_error=True)  # name every bad file before training starts
        dataset.preload()
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    workers = min(workers, max(0, (os.cpu_count() or 1) - 1))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=workers,
                      pin_memory=torch.cuda.is_available(), drop_last=False,
                      persistent_workers=False)


class EpochLoaders:
    """Training batches of epoch ``e``: a loader whose order and augmentation depend on (seed, e)."""

    def __init__(self, samples, preprocess, cfg):
        self.cfg = cfg
        self.loader = image_loader(samples, preprocess, cfg.data.train_transform, True, cfg.optim.batch_size,
                                   cfg.data.num_workers, shuffle=True, seed=cfg.seed, cache=cfg.data.cache_images)

    def __call__(self, epoch: int):
        seed = epoch_seed(self.cfg.seed, epoch)
        self.loader.generator.manual_seed(seed)
        torch.manual_seed(seed)  # augmentation in the main process, dropout
        return self.loader


@torch.no_grad()
def encode_all(method, loader, precision) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised image features and labels of every batch (frozen image encoder)."""
    feats, labels = [], []
    method.eval()
    with precision.autocast():
        for images, y, *_ in loader:
            feats.append(method.encode_image(images.to(method.backbone.device)).float())
            labels.append(y.to(method.backbone.device))
    return torch.cat(feats), torch.cat(labels)


class FeatureEpochs:
    """Training on ``views`` pre-computed augmented views per image (frozen image encoder only)."""

    def __init__(self, method, samples, preprocess, cfg, precision):
        self.cfg = cfg
        parts = []
        for view in range(cfg.data.feature_views):
            loader = image_loader(samples, preprocess, cfg.data.train_transform, True, cfg.data.eval_batch_size,
                                  cfg.data.num_workers, cache=cfg.data.cache_images)
            torch.manual_seed(epoch_seed(cfg.seed, 10_000 + view))
            parts.append(encode_all(method, loader, precision))
        self.features = torch.cat([p[0] for p in parts])
        self.labels = torch.cat([p[1] for p in parts])

    def __call__(self, epoch: int):
        generator = torch.Generator().manual_seed(epoch_seed(self.cfg.seed, epoch))
        torch.manual_seed(epoch_seed(self.cfg.seed, epoch))
        return DataLoader(TensorDataset(self.features, self.labels), batch_size=self.cfg.optim.batch_size,
                          shuffle=True, generator=generator)
