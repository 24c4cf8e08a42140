"""Load a frozen open_clip CLIP as a :class:`Backbone`: the model, its tokenizer and its seams."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from upt.backbone.configs import (
    BUILTIN_CONFIGS,
    BUILTIN_WEIGHTS,
    OPENAI_MEAN,
    OPENAI_STD,
    Preprocess,
    check_backbone_name,
    default_quick_gelu,
)
from upt.backbone.text import TextTower
from upt.backbone.vision import VisionTower
from upt.backbone.weights import load_packaged, require_reachable_weights
from upt.errors import UptError

log = logging.getLogger(__name__)

@dataclass
class Backbone:
    """A frozen CLIP in eval mode with its tokenizer and prompt seams.

    Attributes:
        name: open_clip model name (or a built-in name such as ``tiny``).
        pretrained: open_clip pretrained tag or weights file; None means random weights.
        model: the open_clip model, every parameter frozen.
        text: text tower seams. vision: vision tower seams.
        preprocess: mean, std, size and interpolation the image tower expects.
    """

    name: str
    pretrained: str | None
    model: nn.Module
    text: TextTower
    vision: VisionTower
    preprocess: Preprocess

    @property
    def quick_gelu(self) -> bool:
        """Whether the built model's MLPs use QuickGELU (``x·σ(1.702x)``), read off its modules."""
        return uses_quick_gelu(self.model)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def logit_scale(self) -> torch.Tensor:
        """``exp(logit_scale)``, the learned temperature (a 0-dim tensor)."""
        return self.model.logit_scale.detach().exp()

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[-1]) if hasattr(self.model, "text_projection") and \
            self.model.text_projection is not None else int(getattr(self.model.visual, "output_dim", 0))

    @property
    def tokenizer(self):
        return self.text.tokenizer

    def describe(self) -> dict:
        """What a checkpoint records about the backbone it was trained on."""
        return {
            "name": self.name,
            "pretrained": self.pretrained,
            "embed_dim": self.embed_dim,
            "text_width": self.text.width,
            "vision_width": self.vision.width,
            "text_layers": self.text.layers,
            "vision_layers": self.vision.layers,
            "quick_gelu": self.quick_gelu,
            "preprocess": self.preprocess.to_dict(),
        }

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Backbone:
        self.model.to(device=device, dtype=dtype)
        return self


def load_backbone(
    name: str = "ViT-B-16",
    pretrained: str | None = "openai",
    device: str | torch.device = "cpu",
    quick_gelu: bool | None = None,
) -> Backbone:
    """Build a frozen CLIP backbone in eval mode.

    Args:
        name: an open_clip model name (``open_clip.list_models()``) or a built-in (``tiny``).
        pretrained: an open_clip pretrained tag (``openai``, ``laion2b_s34b_b88k``, ...) or a local
            weights file; None (or ``""``/``none``) builds random weights, which needs no download.
            Random weights are drawn from a fixed seed: every load gives the same model, so a run
            on them can be evaluated again from its folder.
        device: where the model lives.
        quick_gelu: the MLP activation. None (default): the one the weights were trained with,
            from open_clip's pretrained config of the tag (OpenAI CLIP: QuickGELU), else the model
            config's own. open_clip >= 2.24 no longer switches QuickGELU on from the tag by itself.
    """
    if pretrained in ("", "none", "None"):
        pretrained = None
    if quick_gelu is None:
        quick_gelu = default_quick_gelu(name, pretrained)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, tokenizer, preprocess = _create(name, pretrained, quick_gelu)
    model.eval().requires_grad_(False)
    model.to(device)
    log.debug("loaded backbone %s (%s) on %s", name, pretrained, device)
    return Backbone(
        name=name,
        pretrained=pretrained,
        model=model,
        text=TextTower(model, tokenizer, name),
        vision=VisionTower(model, name),
        preprocess=preprocess,
    )


def _create(name: str, pretrained: str | None, quick_gelu: bool | None):
    import open_clip

    if name in BUILTIN_CONFIGS:
        tags = BUILTIN_WEIGHTS.get(name, {})
        own_file = bool(tags) and pretrained is not None and Path(pretrained).is_file()  # `upt pretrain-toy` output
        if pretrained is not None and pretrained not in tags and not own_file:
            have = f"its weights are --pretrained {', '.join(tags)} or a file" if tags else "it has random weights only"
            raise UptError(f"Backbone '{name}' is built in and {have}; drop --pretrained {pretrained}.")
        cfg = BUILTIN_CONFIGS[name]
        model = open_clip.CLIP(**{**cfg, "quick_gelu": quick_gelu})
        if pretrained is not None:
            load_packaged(model, name, pretrained if own_file else tags[pretrained], own_file)
        tokenizer = open_clip.get_tokenizer("ViT-B-16", context_length=cfg["text_cfg"]["context_length"])
        size = BUILTIN_CONFIGS[name]["vision_cfg"]["image_size"]
        preprocess = Preprocess(OPENAI_MEAN, OPENAI_STD, size)
    else:
        check_backbone_name(name)
        require_reachable_weights(name, pretrained)
        try:
            model = open_clip.create_model(name, pretrained=pretrained, device="cpu", force_quick_gelu=bool(quick_gelu))
        except RuntimeError as exc:
            reason = " ".join(str(exc).split()).rstrip(".")
            raise UptError(
                f"Could not load pretrained weights '{pretrained}' for '{name}': {reason}. Check the tag "
                f"(upt list backbones), the internet connection, or pass a local weights file."
            ) from exc
        tokenizer = open_clip.get_tokenizer(name)
        preprocess = _preprocess_of(model)
    if quick_gelu is not None and uses_quick_gelu(model) != quick_gelu:
        raise UptError(f"open_clip built '{name}' with {'QuickGELU' if uses_quick_gelu(model) else 'GELU'} "
                       f"although {'QuickGELU' if quick_gelu else 'GELU'} was asked for; its model config fixes "
                       f"the activation (use the '-quickgelu' model name, or the open_clip version recorded in the run).")
    return model, tokenizer, preprocess


def uses_quick_gelu(model: nn.Module) -> bool:
    """Whether any MLP of ``model`` uses open_clip's QuickGELU."""
    from open_clip.transformer import QuickGELU

    return any(isinstance(m, QuickGELU) for m in model.modules())


def _preprocess_of(model: nn.Module) -> Preprocess:
    import open_clip

    cfg = open_clip.get_model_preprocess_cfg(model) if hasattr(open_clip, "get_model_preprocess_cfg") else {}
    size = cfg.get("size", getattr(model.visual, "image_size", 224))
    if isinstance(size, list | tuple):
        size = size[0]
    return Preprocess(
        mean=tuple(cfg.get("mean", OPENAI_MEAN)),
        std=tuple(cfg.get("std", OPENAI_STD)),
        size=int(size),
        interpolation=cfg.get("interpolation", "bicubic"),
        resize_mode=cfg.get("resize_mode", "shortest"),
    )


