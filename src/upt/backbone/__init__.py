"""The only code that touches open_clip internals."""

from upt.backbone.configs import (
    BUILTIN_CONFIGS,
    Preprocess,
    backbone_info,
    check_backbone_name,
    default_quick_gelu,
    list_backbones,
)
from upt.backbone.load import Backbone, load_backbone
from upt.backbone.text import TextTower
from upt.backbone.vision import PROMPT_MODES, VisionTower

__all__ = [
    "BUILTIN_CONFIGS",
    "PROMPT_MODES",
    "Backbone",
    "Preprocess",
    "TextTower",
    "VisionTower",
    "backbone_info",
    "check_backbone_name",
    "default_quick_gelu",
    "list_backbones",
    "load_backbone",
]
