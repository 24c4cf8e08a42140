"""Tip-Adapter and Tip-Adapter-F (Zhang et al., ECCV 2022): a key-value cache of the few-shot images.

Keys ``K`` (N, D): the N training images' features, each the mean of the encoder's raw features over
``augment_views`` augmented views, then L2-normalised (``build_cache_model``; the preset crops the views
at scale 0.5-1 as the release's ``train_tranform``); values: their one-hot labels ``L`` (N, C).
For an image with normalised feature ``f``:

    logits = s · f·W_textᵀ + α · exp(−β (1 − f·Kᵀ)) · L

with ``s`` CLIP's temperature (the reference writes 100) and ``W_text`` the zero-shot classifier. α
(residual ratio) and β (sharpness) are searched on the validation split over the reference's grid
(``utils.search_hp``: β_i = i·(β_max − 0.1)/n_β + 0.1, i < n_β, likewise α; the first best wins).
Tip-Adapter-F makes the keys trainable (AdamW, eps 1e-4, a cosine stepped every iteration), keeps the
epoch whose keys score best on the validation split with the initial α, β, then searches α, β again.

Deliberate differences (docs/fidelity.md): every search and selection uses the validation split
(the reference selects Tip-Adapter-F's epoch on the test split, searches on it for ImageNet, and
reports the better of two test accuracies); the cache stores labels, not one-hot rows. The cache only
knows the classes it was built from: classes added by :meth:`set_classnames` get no cache term (their
logits are zero-shot CLIP's).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from upt.errors import UptError
from upt.methods.base import PromptMethod, StepSchedule, full_precision, l2, register
from upt.methods.text_prompt import ENSEMBLE_TEMPLATES, zeroshot_classifier
from upt.methods.zeroshot import TEMPLATE_CHOICES, resolve_templates

log = logging.getLogger(__name__)
TIP_TEMPLATES = ("reference", *TEMPLATE_CHOICES)


@dataclass
class TipAdapterConfig:
    """``augment_views``: augmented views averaged into each key (0: one view, evaluation transform);
    ``init_alpha``/``init_beta``: α, β before any search; ``search``: search them on the validation
    split; ``search_scale``: the largest (β, α) searched; ``search_step``: grid points (β, α);
    ``templates``: the zero-shot classifier's: ``reference`` (CLIP's seven on ImageNet, the dataset's
    template elsewhere, as Tip-Adapter's datasets), or a zero-shot choice."""

    augment_views: int = 10
    init_alpha: float = 1.17
    init_beta: float = 1.0
    search: bool = True
    search_scale: tuple[float, float] = (7.0, 3.0)
    search_step: tuple[int, int] = (200, 20)
    templates: Literal["reference", "dataset", "ensemble", "dataset+ensemble"] = "reference"

    def __post_init__(self):
        self.search_scale = tuple(float(v) for v in self.search_scale)
        self.search_step = tuple(int(v) for v in self.search_step)
        if self.augment_views < 0:
            raise UptError(f"augment_views must be >= 0, got {self.augment_views}.")
        if len(self.search_scale) != 2 or len(self.search_step) != 2 or min(self.search_step) <= 0:
            raise UptError("search_scale and search_step take two values each (beta, alpha); steps must be positive.")
        if self.templates not in TIP_TEMPLATES:
            raise UptError(f"Unknown templates '{self.templates}'; choose one of {', '.join(TIP_TEMPLATES)}.")


@dataclass
class TipAdapterFConfig(TipAdapterConfig):
    """Tip-Adapter's options, and ``select_epoch``: keep the epoch whose keys score best on the
    validation split (first best; the reference picks it on the test split); False keeps the last."""

    select_epoch: bool = True


def search_grid(scale: float, steps: int) -> list[float]:
    """``utils.search_hp``'s grid: ``i·(scale − 0.1)/steps + 0.1`` for ``i < steps``."""
    return [i * (scale - 0.1) / steps + 0.1 for i in range(steps)]


def cache_columns(fitted: Sequence[str], current: Sequence[str]) -> list[int]:
    """The cache's column of each current class (repeated names matched in order); -1: not cached."""
    if list(fitted) == list(current):
        return list(range(len(current)))
    used: dict[str, int] = {}
    out = []
    for name in current:
        places = [i for i, f in enumerate(fitted) if f == name]
        k = used.get(name, 0)
        used[name] = k + 1
        out.append(places[min(k, len(places) - 1)] if places else -1)
    return out


@register
class TipAdapter(PromptMethod):
    name = "tip-adapter"
    description = "Tip-Adapter: training-free cache of the few-shot image features beside zero-shot CLIP (count: 16-shot cache)"
    Config = TipAdapterConfig
    trains_by_gradient = False
    frozen_image_encoder = True
    count_shots: ClassVar[int] = 16  # count_parameters describes a cache of this many images per class

    def __init__(self, config, backbone, classnames, template="a photo of a {}."):
        super().__init__(config, backbone, classnames, template)
        self.fitted_classnames = list(classnames)
        self.register_buffer("labels", torch.zeros(0, dtype=torch.long))  # (N,) cache values as labels
        self._set_keys(torch.zeros(0, backbone.embed_dim))  # (N, D) normalised cache keys
        self.register_buffer("alpha", torch.tensor(float(config.init_alpha)))
        self.register_buffer("beta", torch.tensor(float(config.init_beta)))
        self.set_classnames(classnames)

    def _set_keys(self, keys: torch.Tensor) -> None:
        if "keys" in self._buffers:
            keys = keys.to(self.keys)
        self.register_buffer("keys", keys)

    def build_class_buffers(self) -> None:
        templates = (list(ENSEMBLE_TEMPLATES) if not self.ensemble_with_template else [self.template]) \
            if self.config.templates == "reference" else \
            resolve_templates(self.config.templates, self.template, self.ensemble_with_template)
        self.register_buffer("text_features", zeroshot_classifier(self.backbone, self.classnames, templates),
                             persistent=False)
        columns = cache_columns(self.fitted_classnames, self.classnames)
        self.register_buffer("columns", torch.tensor(columns, device=self.text_features.device), persistent=False)

    def fit_views(self) -> int:
        return self.config.augment_views

    def image_features(self, raw: torch.Tensor) -> torch.Tensor:
        """The encoder's raw features in fp32: a key averages its views' raw features before normalising
        (``build_cache_model``); :meth:`logits` and the search normalise what they score."""
        return raw.float()

    def encode_text(self) -> torch.Tensor:
        return self.text_features

    def cache_logits(self, f: torch.Tensor, beta: torch.Tensor | float | None = None) -> torch.Tensor:
        """``exp(−β (1 − f·Kᵀ)) · L`` (B, n_cls) for normalised features ``f``; uncached classes get 0."""
        beta = self.beta if beta is None else beta
        affinity = f @ self.keys.float().t()  # (B, N)
        weights = torch.exp(-beta * (1 - affinity))
        # the cache values, one-hot (N, n_fitted + 1; the last column: classes the cache never saw), as the
        # reference multiplies them: no shape depends on the batch, so the exported graph takes any N
        values = torch.nn.functional.one_hot(self.labels, len(self.fitted_classnames) + 1).to(weights.dtype)
        return (weights @ values)[:, self.columns]

    def logits(self, image_features: torch.Tensor, text_features: torch.Tensor | None = None) -> torch.Tensor:
        if text_features is None:
            text_features = self._text_cache if self._text_cache is not None else self.encode_text()
        with full_precision(image_features):
            f = l2(image_features)
            zero_shot = self.backbone.logit_scale.float() * (f @ text_features.float().t())
            return zero_shot + self.alpha * self.cache_logits(f)

    @torch.no_grad()
    def build_cache(self, train: tuple[torch.Tensor, torch.Tensor]) -> int:
        """Keys from the training features ((N, D), or (V, N, D) views whose raw features are averaged, then
        normalised), values from their labels, α and β at their initial values; returns the cache size."""
        feats, labels = train
        raw = feats.float().mean(0) if feats.dim() == 3 else feats.float()
        if labels.numel() and int(labels.max()) >= len(self.fitted_classnames):
            raise UptError(f"A training label ({int(labels.max())}) exceeds the {len(self.fitted_classnames)} classes.")
        self.labels = labels.to(self.labels.device, torch.long)
        self._set_keys(l2(raw))
        self.alpha.fill_(self.config.init_alpha)
        self.beta.fill_(self.config.init_beta)
        self._text_cache = None
        return int(len(labels))

    def fit_features(self, train, val) -> dict:
        """Build the cache from the training features, then search α, β on ``val``."""
        return {"cache_size": self.build_cache(train), **self.search(val)}

    @torch.no_grad()
    def search(self, val: tuple[torch.Tensor, torch.Tensor]) -> dict:
        """Search α, β on validation features over the reference's grid; the first best accuracy wins."""
        vx, vy = val
        if not self.config.search:
            return {"alpha": float(self.alpha), "beta": float(self.beta)}
        if not len(vy):
            log.warning("no validation images: Tip-Adapter keeps alpha=%g, beta=%g without a search",
                        float(self.alpha), float(self.beta))
            return {"alpha": float(self.alpha), "beta": float(self.beta), "val_accuracy": None}
        f = l2(vx)
        zero_shot = self.backbone.logit_scale.float() * (f @ self.text_features.float().t())
        best, best_beta, best_alpha = 0, 0.0, 0.0  # as utils.search_hp: nothing better than 0 correct -> 0, 0
        alphas = search_grid(self.config.search_scale[1], self.config.search_step[1])
        for beta in search_grid(self.config.search_scale[0], self.config.search_step[0]):
            cache = self.cache_logits(f, beta)
            for alpha in alphas:
                correct = int(((zero_shot + alpha * cache).argmax(1) == vy).sum())
                if correct > best:
                    best, best_beta, best_alpha = correct, beta, alpha
        self.alpha.fill_(best_alpha)
        self.beta.fill_(best_beta)
        return {"alpha": best_alpha, "beta": best_beta, "val_accuracy": 100.0 * best / len(vy)}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        keys, labels = state.get("keys"), state.get("labels")
        if isinstance(keys, torch.Tensor) and isinstance(labels, torch.Tensor) and keys.dim() == 2 \
                and keys.shape[0] != self.keys.shape[0]:  # a cache of another size: resize, then load
            self.labels = torch.zeros_like(labels, device=self.labels.device)
            self._set_keys(torch.zeros(keys.shape[0], self.keys.shape[1]))
        super().load_trainable_state_dict(state)

    @classmethod
    def count_parameters(cls, config, backbone, n_cls):
        """Keys and labels of a cache of ``count_shots`` images per class, and α, β."""
        n = cls.count_shots * n_cls
        return n * (backbone.embed_dim + 1) + 2


@register
class TipAdapterF(TipAdapter):
    name = "tip-adapter-f"
    description = "Tip-Adapter-F: Tip-Adapter with the cache keys fine-tuned (count: 16-shot cache)"
    Config = TipAdapterFConfig
    trains_by_gradient = True
    fit_before_training = True

    def _set_keys(self, keys: torch.Tensor) -> None:
        old = self._parameters.get("keys")
        self.keys = nn.Parameter(keys.to(old) if old is not None else keys)  # the reference's adapter weight

    def fit_features(self, train, val) -> dict:
        """Build the cache with the initial α, β; the search runs after training (:meth:`on_epoch_end`)."""
        size = self.build_cache(train)
        self._val = (val[0].float(), val[1])
        self._best: tuple[int, torch.Tensor] | None = None
        return {"cache_size": size, "alpha": self.config.init_alpha, "beta": self.config.init_beta}

    def step_schedule(self, epochs: int, steps_per_epoch: int, shots: int) -> StepSchedule:
        # main.py: AdamW(eps=1e-4), CosineAnnealingLR(train_epoch * len(train_loader_F)) stepped every iteration.
        return StepSchedule(steps=epochs * steps_per_epoch, eta_min=0.0, eps=1e-4)

    @torch.no_grad()
    def on_epoch_end(self, epoch: int, epochs: int) -> dict:
        """Validation accuracy of this epoch's keys (initial α, β); after the last epoch, the best
        epoch's keys are kept (``select_epoch``) and α, β are searched on the validation split."""
        vx, vy = getattr(self, "_val", (None, None))
        if vy is None or not len(vy):
            if epoch + 1 == epochs:
                log.warning("no validation images: Tip-Adapter-F keeps the last epoch and alpha, beta unsearched")
            return {}
        correct = int((self.logits(vx).argmax(1) == vy).sum())
        if self.config.select_epoch and (self._best is None or correct > self._best[0]):
            self._best = (correct, self.keys.detach().clone())
        record = {"val_accuracy": 100.0 * correct / len(vy)}
        if epoch + 1 == epochs:
            if self.config.select_epoch and self._best is not None:
                self.keys.copy_(self._best[1])
            record.update({f"search_{k}": v for k, v in self.search((vx, vy)).items()})
        return record

    def training_state(self) -> dict[str, torch.Tensor]:
        best = getattr(self, "_best", None)
        return {} if best is None else {"best_correct": torch.tensor(best[0]), "best_keys": best[1]}

    def load_training_state(self, state: dict[str, torch.Tensor]) -> None:
        if "best_keys" in state:
            self._best = (int(state["best_correct"]), state["best_keys"].to(self.keys))
