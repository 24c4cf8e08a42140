"""The contract every method follows, and the decorator that registers a method by name.

A method is an ``nn.Module`` built from ``(config, backbone, classnames, template)``.
``forward(images)`` always returns logits (B, n_cls). The frozen backbone is held as a plain
attribute, not a submodule, so ``method.parameters()`` and ``state_dict()`` hold only what the
method itself owns, and the optimizer can never reach a CLIP weight.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from upt.backbone import Backbone
from upt.errors import UptError

REGISTRY: dict[str, type[PromptMethod]] = {}


def register(cls: type[PromptMethod]) -> type[PromptMethod]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    REGISTRY[cls.name] = cls
    return cls


class PromptMethod(nn.Module):
    """Base class: frozen CLIP + trainable prompts -> logits over the task's classes.

    Class attributes a method sets:
        name, description: registry name and one line for ``upt list methods``.
        Config: its config dataclass.
        trains_by_gradient: False for methods fitted in closed form on features (linear probe)
            or not fitted at all (zero-shot); the engine then calls :meth:`fit_features`.
        frozen_image_encoder: True when :meth:`encode_image` does not depend on trained tensors,
            so image features may be cached.
        image_dependent_text: True when class text features depend on the image (CoCoOp).
        open_vocabulary: whether :meth:`set_classnames` accepts classes never trained on.
        uses_text: False for methods without class text features (linear probe).
        needs_training_data: False for methods that use no labelled images at all (zero-shot):
            the engine then reads only the evaluation split.
        fit_before_training: True for gradient methods that start from a closed-form fit on image
            features (Tip-Adapter-F's cache): the engine calls :meth:`fit_features` first.

    Optional training hooks, each a no-op by default: :meth:`regularization` (a loss term beside the
    cross-entropy), :meth:`on_epoch_end`, :meth:`training_state` / :meth:`load_training_state` (what
    resuming needs beyond the trained tensors), :meth:`step_schedule` (a reference code's per-step
    schedule) and :meth:`fit_views` (augmented views for :meth:`fit_features`).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type]
    trains_by_gradient: ClassVar[bool] = True
    frozen_image_encoder: ClassVar[bool] = False
    image_dependent_text: ClassVar[bool] = False
    open_vocabulary: ClassVar[bool] = True
    uses_text: ClassVar[bool] = True
    needs_training_data: ClassVar[bool] = True
    fit_before_training: ClassVar[bool] = False

    def __init__(self, config: Any, backbone: Backbone, classnames: Sequence[str], template: str = "a photo of a {}."):
        super().__init__()
        self.config = config
        self.backbone = backbone  # plain attribute: never a submodule, never in state_dict
        self.template = template
        self.ensemble_with_template = True  # a template ensemble includes ``template`` (not for ImageNet)
        self.classnames: list[str] = []
        self.text_chunk_size: int | None = None
        self.grad_checkpointing = False
        self._text_cache: torch.Tensor | None = None

    def configure_compute(
        self,
        text_chunk_size: int | None = None,
        grad_checkpointing: bool = False,
        truncate_text: bool = True,
        share_prefix: bool = True,
    ) -> None:
        """Trade memory for compute; every setting gives the same numbers.

        Args:
            text_chunk_size: encode at most this many class prompts at a time.
            grad_checkpointing: recompute encoder activations in backward instead of storing them.
            truncate_text: cut prompts after the last [EOS] (False: all 77 tokens, reference-style).
            share_prefix: run the "[SOS] context" tokens shared by all class prompts once.
        """
        self.text_chunk_size = text_chunk_size
        self.grad_checkpointing = grad_checkpointing
        for module in self.modules():
            if hasattr(module, "share_prefix"):
                module.share_prefix = share_prefix
            if hasattr(module, "truncate") and module.truncate != truncate_text:
                module.truncate = truncate_text
                if hasattr(module, "build"):  # a prompt template holds its ids cut to that length
                    module.build(self.classnames)
        self._text_cache = None

    # --- contract ---------------------------------------------------------------------------
    def set_classnames(self, classnames: Sequence[str], template: str | None = None,
                       ensemble_with_template: bool | None = None) -> None:
        """Rebuild class-dependent buffers for ``classnames``; trained tensors are untouched.

        ``template``: the dataset's prompt template; ``ensemble_with_template``: whether a template
        ensemble adds it to CLIP's seven (the dataset's choice, see ``DatasetSplits``).
        """
        if not classnames:
            raise UptError("A method needs at least one class name.")
        self.classnames = list(classnames)
        if template is not None:
            self.template = template
        if ensemble_with_template is not None:
            self.ensemble_with_template = ensemble_with_template
        self._text_cache = None
        self.build_class_buffers()

    def build_class_buffers(self) -> None:
        """Hook: (re)compute buffers that depend on ``self.classnames``."""

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """The method's image features (B, D): :meth:`image_features` of the frozen encoder's output.
        (A method that prompts or adapts the image encoder overrides this.)"""
        return self.image_features(self.backbone.vision.encode_images(images))

    def image_features(self, raw: torch.Tensor) -> torch.Tensor:
        """The method's image features from the frozen encoder's raw output (default: L2-normalised,
        fp32). Stored raw features (:mod:`upt.engine.features`) go through this, so they give the
        same numbers as encoding the images."""
        return l2(raw)

    def encode_text(self) -> torch.Tensor:
        """L2-normalised class text features (n_cls, D)."""
        raise NotImplementedError

    def logits(self, image_features: torch.Tensor, text_features: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled cosine similarities (B, n_cls) from normalised image features."""
        if text_features is None:
            text_features = self._text_cache if self._text_cache is not None else self.encode_text()
        with full_precision(image_features):
            return self.backbone.logit_scale.float() * (image_features.float() @ text_features.float().t())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(self.encode_image(images))

    @contextlib.contextmanager
    def cached_text(self) -> Iterator[None]:
        """Within this context, class text features are computed once (evaluation, no grad).

        A no-op for methods whose text depends on the image or that have no text side.
        """
        if self.image_dependent_text or not self.uses_text:
            yield
            return
        with torch.no_grad():
            self._text_cache = self.encode_text()
        try:
            yield
        finally:
            self._text_cache = None

    def fit_features(self, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor]) -> dict:
        """Closed-form fit on :meth:`encode_image` features of the training and validation images; for
        ``trains_by_gradient = False`` or ``fit_before_training``. ``train`` holds features (N, D), or
        (V, N, D) for V = :meth:`fit_views` augmented views of each image, and labels (N,)."""
        return {}

    def fit_views(self) -> int:
        """Augmented views of each training image :meth:`fit_features` receives (0: one view with the
        evaluation transform)."""
        return 0

    # --- optional training hooks --------------------------------------------------------------
    def regularization(self) -> torch.Tensor | None:
        """A term added to the cross-entropy of the training step just run, from what the forward
        kept (a mean over the batch); None trains on cross-entropy alone."""
        return None

    def on_epoch_end(self, epoch: int, epochs: int) -> dict | None:
        """Called after training epoch ``epoch`` (0-based) of ``epochs``, before the checkpoint;
        what it returns is added to that epoch's record in ``metrics.jsonl``."""
        return None

    def training_state(self) -> dict[str, torch.Tensor]:
        """Tensors beyond the trained ones that resuming a run needs (kept in its checkpoint)."""
        return {}

    def load_training_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`training_state` when a run resumes."""

    def step_schedule(self, epochs: int, steps_per_epoch: int, shots: int) -> StepSchedule | None:
        """The reference code's own schedule, stepped after every optimiser step, or None (default)
        for the engine's per-epoch warm-up and cosine over ``epochs``."""
        return None

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor the method learns (parameters and learned buffers), detached, by name."""
        return {k: v.detach() for k, v in self.state_dict().items()}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = self.state_dict()
        missing, unexpected = set(own) - set(state), set(state) - set(own)
        if missing or unexpected:
            raise UptError(
                f"The prompt tensors do not fit method '{self.name}': missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}."
            )
        for k, v in state.items():
            if own[k].shape != v.shape:
                raise UptError(
                    f"Tensor '{k}' has shape {tuple(v.shape)} in the checkpoint but {tuple(own[k].shape)} here: "
                    "it was trained with another backbone or config."
                )
        self.load_state_dict(state)
        self._text_cache = None

    def num_trainable(self) -> int:
        """Number of learned scalars (what :meth:`trainable_state_dict` saves)."""
        return sum(v.numel() for v in self.trainable_state_dict().values())

    @classmethod
    def count_parameters(cls, config: Any, backbone: Backbone, n_cls: int) -> int:
        """The documented formula for the trainable parameter count (methods.md)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"backbone={self.backbone.name}, classes={len(self.classnames)}"


@dataclasses.dataclass(frozen=True)
class StepSchedule:
    """A schedule some reference codes step after every optimiser step: ``steps`` steps in all, the
    learning rate falling from ``optim.lr`` to ``eta_min`` on a cosine without warm-up (torch's
    ``CosineAnnealingLR`` over ``steps``); ``eps``: the AdamW epsilon the reference passes (None: torch's)."""

    steps: int
    eta_min: float = 0.0
    eps: float | None = None

    def __post_init__(self):
        if self.steps <= 0:
            raise UptError(f"A schedule needs at least one optimiser step, got {self.steps}.")

    def lr(self, step: int, base_lr: float) -> float:
        """Learning rate of the 0-based optimiser step ``step``."""
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * step / self.steps)) / 2


def full_precision(like: torch.Tensor) -> contextlib.AbstractContextManager:
    """A region without autocast on ``like``'s device: the final similarity, softmax and loss run in
    fp32 even inside a bf16/fp16 run (a bf16 cosine near 0.3 steps by ~2e-3: ties, flipped argmaxes)."""
    return torch.autocast(like.device.type, enabled=False)


def l2(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise features in fp32."""
    return F.normalize(x.float(), dim=-1)


def normal_param(*shape: int, std: float = 0.02) -> nn.Parameter:
    """A parameter drawn from N(0, std²), the prompt initialisation of every paper here."""
    return nn.Parameter(torch.randn(*shape) * std)
