"""Load a frozen open_clip CLIP as a :class:`Backbone`: the model, its tokenizer and its seams."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from upt.backbone.text import TextTower
from upt.backbone.vision import VisionTower
from upt.errors import UptError, unknown_name

log = logging.getLogger(__name__)

# The built-in backbones: an open_clip CLIP built from a config, random init, no download.
# `tiny` matches the model of the reference-parity data (shared/parity), so its weights load into it.
BUILTIN_CONFIGS: dict[str, dict] = {
    "tiny": {
        "embed_dim": 64,
        "quick_gelu": True,
        "vision_cfg": {"layers": 2, "width": 128, "head_width": 64, "patch_size": 8, "image_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
    },
}
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Preprocess:
    """The image preprocessing a backbone expects."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    size: int
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"

    def to_dict(self) -> dict:
        return asdict(self)


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


def list_backbones() -> list[dict]:
    """Built-in backbones and every open_clip model name with its pretrained tags."""
    import open_clip

    rows = [{"name": n, "pretrained": "(random init, no download)"} for n in BUILTIN_CONFIGS]
    tags: dict[str, list[str]] = {}
    for model_name, tag in open_clip.list_pretrained():
        tags.setdefault(model_name, []).append(tag)
    for model_name in open_clip.list_models():
        rows.append({"name": model_name, "pretrained": ", ".join(tags.get(model_name, [])) or "-"})
    return rows


def check_backbone_name(name: str) -> None:
    """Raise the unknown-name error (with the closest suggestion) for a backbone open_clip lacks."""
    import open_clip

    known = open_clip.list_models()
    if name not in BUILTIN_CONFIGS and name not in known and not name.startswith(("hf-hub:", "local-dir:")):
        raise unknown_name("backbone", name, list(BUILTIN_CONFIGS) + known)


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
        if pretrained is not None:
            raise UptError(f"Backbone '{name}' is built in with random weights; drop --pretrained {pretrained}.")
        model = open_clip.CLIP(**{**BUILTIN_CONFIGS[name], "quick_gelu": quick_gelu})
        tokenizer = open_clip.get_tokenizer("ViT-B-16")
        size = BUILTIN_CONFIGS[name]["vision_cfg"]["image_size"]
        preprocess = Preprocess(OPENAI_MEAN, OPENAI_STD, size)
    else:
        check_backbone_name(name)
        try:
            model = open_clip.create_model(name, pretrained=pretrained, device="cpu", force_quick_gelu=bool(quick_gelu))
        except RuntimeError as exc:
            raise UptError(
                f"Could not load pretrained weights '{pretrained}' for '{name}': {exc}. Check the tag "
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


def model_config(name: str) -> dict:
    """open_clip's architecture config of ``name`` (or a built-in's), without building anything."""
    import open_clip

    if name in BUILTIN_CONFIGS:
        return BUILTIN_CONFIGS[name]
    check_backbone_name(name)
    if name.startswith(("hf-hub:", "local-dir:")):
        return {}  # the hub holds the config; described once loaded
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise UptError(f"open_clip has no local config for '{name}' (hub models are described once loaded).")
    return cfg


def pretrained_config(name: str, pretrained: str | None) -> dict:
    """open_clip's record of a pretrained tag (URL, mean/std, ``quick_gelu``); {} for files or none."""
    import open_clip

    if pretrained is None or name in BUILTIN_CONFIGS:
        return {}
    return dict(open_clip.get_pretrained_cfg(name, pretrained) or {})


def default_quick_gelu(name: str, pretrained: str | None) -> bool | None:
    """The activation the weights of ``(name, pretrained)`` were trained with.

    The tag's pretrained config says so where open_clip records it (OpenAI, MetaCLIP, DFN ... tags:
    ``quick_gelu: True``); the ``-quickgelu`` model names and built-ins carry it in the model config.
    Older open_clip releases lack the key in pretrained configs: there the ``openai`` tag is QuickGELU.
    """
    if name.startswith(("hf-hub:", "local-dir:")):
        return None  # open_clip reads the activation from the hub model's own config
    model_cfg = model_config(name)
    tag_cfg = pretrained_config(name, pretrained)
    return bool(model_cfg.get("quick_gelu", False) or tag_cfg.get("quick_gelu", pretrained == "openai"))


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


def backbone_info(name: str, pretrained: str | None = None, quick_gelu: bool | None = None) -> dict:
    """What :func:`load_backbone` would build, from open_clip's configs alone (no weights, no model).

    Returns the architecture, widths, layers, heads, image size, preprocessing and the activation
    (``quick_gelu``), in the same terms as :meth:`Backbone.describe`.
    """
    if pretrained in ("", "none", "None"):
        pretrained = None
    cfg = model_config(name)
    tag = pretrained_config(name, pretrained)
    if pretrained is not None and not tag and name not in BUILTIN_CONFIGS and not Path(pretrained).is_file():
        import open_clip

        known = [t for m, t in open_clip.list_pretrained() if m == name]
        raise unknown_name(f"pretrained tag of {name}", pretrained, known)
    vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    if isinstance(vision.get("layers"), list | tuple):
        arch = "resnet"
    elif vision.get("timm_model_name"):
        arch = f"timm:{vision['timm_model_name']}"
    else:
        arch = "vit"
    size = vision.get("image_size", 224)
    pp = {"mean": OPENAI_MEAN, "std": OPENAI_STD, "size": size, "interpolation": "bicubic", "resize_mode": "shortest",
          **cfg.get("preprocess_cfg", {}), **{k: tag[k] for k in ("mean", "std", "interpolation", "resize_mode")
                                             if k in tag}}
    size = pp["size"][0] if isinstance(pp["size"], list | tuple) else pp["size"]
    return {
        "name": name,
        "pretrained": pretrained,
        "architecture": arch,
        "embed_dim": cfg.get("embed_dim"),
        "text_width": text.get("width"),
        "text_layers": text.get("layers"),
        "text_heads": text.get("heads", 8),
        "context_length": text.get("context_length", 77),
        "vision_width": vision.get("width"),
        "vision_layers": vision.get("layers"),
        "vision_heads": (vision["width"] // vision.get("head_width", 64)) if arch == "vit" else None,
        "patch_size": vision.get("patch_size"),
        "image_size": size,
        "quick_gelu": default_quick_gelu(name, pretrained) if quick_gelu is None else quick_gelu,
        "preprocess": Preprocess(tuple(pp["mean"]), tuple(pp["std"]), int(size), pp["interpolation"],
                                 pp["resize_mode"]).to_dict(),
        "weights": tag.get("hf_hub") or tag.get("url") or (pretrained if pretrained else "random init, no download"),
    }
