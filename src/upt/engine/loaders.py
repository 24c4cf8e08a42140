"""DataLoaders for a run: seeded per epoch, decoded images reused, features cached when allowed."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import torch
from PIL import Image
from torch.utils.data import DataLoader

from upt.data import ImageDataset, build_transform
from upt.data.images import verify_images
from upt.engine.distributed import GlobalBatchSampler, shard
from upt.engine.train import epoch_seed

log = logging.getLogger(__name__)

# Training transforms without randomness: image features of a frozen encoder can be computed once.
DETERMINISTIC_TRANSFORMS = ("center_crop",)
# Few-shot sets are re-read every epoch: keep decoded images when a split is at most this large,
# at full resolution, up to CACHE_BYTES of pixels (the rest is read from disk each epoch).
CACHE_LIMIT = 20_000
CACHE_BYTES = 4 * 2**30


def image_dataset(samples, preprocess, transform: str, train: bool, cache: bool = False,
                  short_side: int | None = None) -> ImageDataset:
    """Samples + transform; small sets keep their decoded images (checked up front: bad files named).

    ``short_side``: shrink cached images to this short side first (``data.cache_short_side``, an
    opt-in speed setting); None keeps the original pixels, which random crops then sample from.
    """
    tf = build_transform(preprocess, train=train, name=transform)
    dataset = ImageDataset(samples, tf, cache=cache and len(samples) <= CACHE_LIMIT, cache_size=short_side,
                           cache_bytes=CACHE_BYTES)
    if dataset.cache:
        verify_images(samples, raise_error=True)  # name every bad file before training starts
        dataset.preload()
    return dataset


def check_images(samples, what: str) -> None:
    """Name every unreadable image of ``samples`` now, before training rather than after it.

    Sets up to :data:`CACHE_LIMIT` images are decoded in full; larger ones (ImageNet's 50,000 test
    images) have their headers read, which finds missing, empty and non-image files in seconds.
    """
    if len(samples) <= CACHE_LIMIT:
        verify_images(samples, raise_error=True)
        return
    log.info("checking the headers of %d %s images", len(samples), what)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        bad = [s.path for s, ok in zip(samples, pool.map(_header_ok, samples), strict=True) if not ok]
    if bad:
        verify_images(bad, raise_error=True)  # the decoder's own sentence for each bad file


def _header_ok(sample) -> bool:
    try:
        with Image.open(sample.path) as image:
            return image.size[0] > 0 and image.size[1] > 0
    except Exception:  # noqa: BLE001 - any failure is reported by verify_images with its reason
        return False


def _workers(n: int) -> int:
    return min(n, max(0, (os.cpu_count() or 1) - 1))


def image_loader(samples, preprocess, transform: str, train: bool, batch_size: int, workers: int,
                 cache: bool = False, short_side: int | None = None) -> DataLoader:
    """A loader of (image tensor, label, index) batches in order (evaluation, feature extraction)."""
    return DataLoader(image_dataset(samples, preprocess, transform, train, cache, short_side), batch_size=batch_size,
                      num_workers=_workers(workers), pin_memory=torch.cuda.is_available())


def eval_loader(samples, preprocess, cfg) -> DataLoader:
    """This rank's shard of an evaluation split (all of it in a single process)."""
    part = shard(len(samples))
    return image_loader(samples[part.start : part.stop], preprocess, cfg.data.eval_transform, False,
                        cfg.data.eval_batch_size, cfg.data.num_workers)


class _Epochs:
    """What the training loop asks of an epoch source, answered by its :class:`GlobalBatchSampler`."""

    sampler: GlobalBatchSampler

    def global_size(self, step: int) -> int:
        return self.sampler.global_size(step)

    @property
    def images(self) -> int:
        return self.sampler.images


class EpochLoaders(_Epochs):
    """Training batches of epoch ``e``: order and augmentation depend on (seed, e) only, and each
    process of a data-parallel run gets its slice of the same global batches."""

    def __init__(self, samples, preprocess, cfg):
        self.cfg = cfg
        dataset = image_dataset(samples, preprocess, cfg.data.train_transform, True, cfg.data.cache_images,
                                cfg.data.cache_short_side)
        self.sampler = GlobalBatchSampler(len(dataset), cfg.optim.batch_size)
        self.generator = torch.Generator()
        self.loader = DataLoader(dataset, batch_sampler=self.sampler, num_workers=_workers(cfg.data.num_workers),
                                 generator=self.generator, pin_memory=torch.cuda.is_available())

    def __call__(self, epoch: int):
        seed = epoch_seed(self.cfg.seed, epoch)
        self.sampler.set_seed(seed)
        self.generator.manual_seed(seed)  # worker seeds
        torch.manual_seed(seed)  # augmentation in the main process, dropout
        return self.loader


@torch.no_grad()
def encode_all(method, loader, precision) -> tuple[torch.Tensor, torch.Tensor]:
    """The method's image features (:meth:`~upt.methods.base.PromptMethod.encode_image`: normalised, for all
    but Tip-Adapter's raw ones) and labels of every batch (frozen image encoder)."""
    feats, labels = [], []
    method.eval()
    with precision.autocast():
        for images, y, *_ in loader:
            feats.append(method.encode_image(images.to(method.backbone.device)).float())
            labels.append(y.to(method.backbone.device))
    return torch.cat(feats), torch.cat(labels)


class FeatureEpochs(_Epochs):
    """Training on pre-computed image features (methods whose image encoder is frozen).

    Exact when the training transform is deterministic (one view). With ``data.feature_views``
    = V > 1, V augmented views of every image are encoded once and epoch ``e`` uses view
    ``e mod V``: a change of protocol (fewer distinct augmentations), offered for speed.
    Batches follow the same :class:`GlobalBatchSampler` as image training.
    """

    def __init__(self, method, samples, preprocess, cfg, precision, views: int):
        from upt.engine.features import encoded

        self.cfg = cfg
        self.views = []
        if views == 1 and cfg.data.train_transform in DETERMINISTIC_TRANSFORMS:  # one exact view: storable
            torch.manual_seed(epoch_seed(cfg.seed, 10_000))  # the random state the loop below leaves
            stored = encoded(method, samples, "train", cfg.data.train_transform, cfg, precision)
            self.views = [stored] if stored is not None else []
        for view in range(len(self.views), views):
            loader = image_loader(samples, preprocess, cfg.data.train_transform, True, cfg.data.eval_batch_size,
                                  cfg.data.num_workers, cache=cfg.data.cache_images,
                                  short_side=cfg.data.cache_short_side)
            torch.manual_seed(epoch_seed(cfg.seed, 10_000 + view))
            self.views.append(encode_all(method, loader, precision))
        self.sampler = GlobalBatchSampler(len(samples), cfg.optim.batch_size)

    def __call__(self, epoch: int):
        features, labels = self.views[epoch % len(self.views)]
        seed = epoch_seed(self.cfg.seed, epoch)
        self.sampler.set_seed(seed)
        torch.manual_seed(seed)
        return ((features[idx], labels[idx]) for idx in self.sampler)
