"""Zero-shot CLIP (Radford et al., ICML 2021): class text features from hand-written templates.

Nothing is trained. The classifier is computed once per class list, from the dataset's template
or from the mean of the normalised features of a template ensemble.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from upt.errors import UptError
from upt.methods.base import PromptMethod, register
from upt.methods.text_prompt import ENSEMBLE_TEMPLATES, zeroshot_classifier

TEMPLATE_CHOICES = ("dataset", "ensemble", "dataset+ensemble")


@dataclass
class ZeroShotConfig:
    """``templates``: ``dataset`` (the dataset's own template), ``ensemble`` (CLIP's seven
    ImageNet templates) or ``dataset+ensemble``."""

    templates: Literal["dataset", "ensemble", "dataset+ensemble"] = "dataset"

    def __post_init__(self):
        if self.templates not in TEMPLATE_CHOICES:
            raise UptError(f"Unknown templates '{self.templates}'; choose one of {', '.join(TEMPLATE_CHOICES)}.")


def resolve_templates(choice: str, dataset_template: str) -> list[str]:
    out = []
    if "dataset" in choice:
        out.append(dataset_template)
    if "ensemble" in choice:
        out.extend(ENSEMBLE_TEMPLATES)
    return out


@register
class ZeroShot(PromptMethod):
    name = "zeroshot"
    description = "zero-shot CLIP: hand-written template(s), nothing trained"
    Config = ZeroShotConfig
    trains_by_gradient = False
    frozen_image_encoder = True

    def __init__(self, config, backbone, classnames, template="a photo of a {}."):
        super().__init__(config, backbone, classnames, template)
        self.set_classnames(classnames)

    def build_class_buffers(self) -> None:
        templates = resolve_templates(self.config.templates, self.template)
        self.register_buffer(
            "text_features", zeroshot_classifier(self.backbone, self.classnames, templates), persistent=False
        )

    def encode_text(self):
        return self.text_features

    @classmethod
    def count_parameters(cls, config, backbone, n_cls):
        return 0
