"""Backbones described without building them: the built-ins, open_clip's configs, pretrained tags,
the activation each tag's weights were trained with, and which methods each backbone can run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from upt.errors import UptError, unknown_name

# The built-in backbones: an open_clip CLIP built from a config, random init, no download.
# `tiny` matches the model of the reference-parity data (shared/parity), so its weights load into it.
BUILTIN_CONFIGS: dict[str, dict] = {
    "tiny": {
        "embed_dim": 64,
        "quick_gelu": True,
        "vision_cfg": {"layers": 2, "width": 128, "head_width": 64, "patch_size": 8, "image_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
    },
    # `toy`: tiny's size, pretrained by the package itself on drawn, captioned shapes (upt.toy).
    "toy": {
        "embed_dim": 64,
        "quick_gelu": True,
        "vision_cfg": {"layers": 3, "width": 128, "head_width": 64, "patch_size": 8, "image_size": 32},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
}
# Built-ins whose weights ship with the package, by their pretrained tag.
BUILTIN_WEIGHTS: dict[str, dict[str, str]] = {"toy": {"upt": "toy.safetensors"}}


def builtin_default_weights(name: str) -> str | None:
    """The pretrained tag a built-in gets when none is given: its packaged weights, or None (random)."""
    return next(iter(BUILTIN_WEIGHTS.get(name, {})), None)
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


def check_backbone_name(name: str) -> None:
    """Raise the unknown-name error (with the closest suggestion) for a backbone open_clip lacks."""
    import open_clip

    known = open_clip.list_models()
    if name not in BUILTIN_CONFIGS and name not in known and not name.startswith(("hf-hub:", "local-dir:")):
        raise unknown_name("backbone", name, list(BUILTIN_CONFIGS) + known)



def list_backbones() -> list[dict]:
    """Built-in backbones and every open_clip model name with the methods it can run (``all``, or
    their names; :func:`method_support`, from configs alone: no model is built) and its pretrained tags."""
    import open_clip

    tags: dict[str, list[str]] = {}
    for model_name, tag in open_clip.list_pretrained():
        tags.setdefault(model_name, []).append(tag)
    rows = []
    for model_name in [*BUILTIN_CONFIGS, *open_clip.list_models()]:
        support = method_support(model_name)
        ok = [m for m, why in support.items() if why is None]
        if model_name in BUILTIN_CONFIGS:
            packaged = ", ".join(BUILTIN_WEIGHTS.get(model_name, {}))
            pretrained = f"{packaged} (packaged, no download)" if packaged else "(random init, no download)"
        else:
            pretrained = ", ".join(tags.get(model_name, [])) or "-"
        rows.append({"name": model_name, "methods": "all" if len(ok) == len(support) else ", ".join(ok),
                     "pretrained": pretrained})
    return rows


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


# The prompt seams each method needs (its module calls ``TextTower``/``VisionTower.require_prompts``
# for exactly these); tests check this table against the registry and against the methods themselves.
METHOD_SEAMS: dict[str, tuple[str, ...]] = {
    "zeroshot": (), "linear-probe": (), "coop": ("text",), "cocoop": ("text",), "vpt": ("visual",),
    "maple": ("text", "visual"), "upt": ("text", "visual"), "kgcoop": ("text",), "promptsrc": ("text", "visual"),
    "clip-lora": ("text", "visual"), "tip-adapter": (), "tip-adapter-f": (),
}


def method_support(name: str) -> dict[str, str | None]:
    """Why each method cannot run on backbone ``name`` (None where it can), from open_clip's model
    config alone: no model is built, nothing is downloaded.

    Text prompts (coop, cocoop, kgcoop, maple, promptsrc, upt) and CLIP-LoRA's text-side updates
    need an OpenAI-style text tower pooled at [EOS]: not a custom one (``custom_text``: EVA, SigLIP,
    MobileCLIP...), a Hugging Face one or CoCa's. Visual prompts (vpt, maple, promptsrc, upt) and
    CLIP-LoRA's image-side updates need a ViT image tower pooled on its class token: not a ResNet
    (``layers`` a list), a timm tower (ConvNeXt, EVA, SigLIP...), an attentional pooler (CoCa) or
    average pooling (CLIPA). This is what ``TextTower``/``VisionTower.supports_prompts`` find on the
    built model (tested). Hub models (``hf-hub:``, ``local-dir:``) are checked once built: all None here.
    """
    missing = _missing_seams(model_config(name))
    supported = [m for m, seams in METHOD_SEAMS.items() if not set(seams) & set(missing)]
    out: dict[str, str | None] = {}
    for method, seams in METHOD_SEAMS.items():
        lacks = [s for s in seams if s in missing]
        out[method] = None if not lacks else (
            f"{method} needs {'- and '.join(lacks)}-prompt seams, which backbone '{name}' lacks "
            f"({'; '.join(missing[s] for s in lacks)}); use a CLIP ViT such as ViT-B-16, or a method it supports "
            f"({', '.join(supported)})."
        )
    return out


def _missing_seams(cfg: dict) -> dict[str, str]:
    """``{"text"|"visual": why}`` for each prompt seam a model config does not give (see :func:`method_support`)."""
    vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    missing: dict[str, str] = {}
    if not cfg:
        return missing  # a hub model: its config is known once loaded
    if isinstance(vision.get("layers"), list | tuple):
        missing["visual"] = "a ResNet image tower"
    elif vision.get("timm_model_name"):
        missing["visual"] = f"a timm image tower, {vision['timm_model_name']}"
    elif vision.get("attentional_pool") or vision.get("pool_type", "tok") != "tok":
        missing["visual"] = "an image tower not pooled on its class token"
    if "multimodal_cfg" in cfg:
        missing["text"] = "CoCa's text tower"
    elif text.get("hf_model_name"):
        missing["text"] = f"a Hugging Face text tower, {text['hf_model_name']}"
    elif cfg.get("custom_text"):
        missing["text"] = "a custom text tower"
    elif text.get("pool_type", "argmax") not in ("argmax", "eos"):
        missing["text"] = f"a text tower pooled by '{text['pool_type']}', not at [EOS]"
    return missing
