"""Zero-shot CLIP (Radford et al., ICML 2021): class text features from hand-written templates.

Nothing is trained. The classifier is computed once per class list, from the dataset's template
or from the mean of the normalised features of a template ensemble.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from upt.errors import UptError
from upt.methods.base import PromptMethod, full_precision, register
from upt.methods.text_prompt import ENSEMBLE_TEMPLATES, zeroshot_classifier

TEMPLATE_CHOICES = ("dataset", "ensemble", "dataset+ensemble")


@dataclass
class ZeroShotConfig:
    """``templates``: ``dataset`` (the dataset's own template; CoOp's ``ZeroshotCLIP``),
    ``ensemble`` (CLIP's seven ImageNet templates) or ``dataset+ensemble`` (CoOp's
    ``ZeroshotCLIP2``: the seven plus the dataset's own, except on ImageNet, where the seven were
    selected and the dataset template is left out)."""

    templates: Literal["dataset", "ensemble", "dataset+ensemble"] = "dataset"

    def __post_init__(self):
        if self.templates not in TEMPLATE_CHOICES:
            raise UptError(f"Unknown templates '{self.templates}'; choose one of {', '.join(TEMPLATE_CHOICES)}.")


def resolve_templates(choice: str, dataset_template: str, ensemble_with_template: bool = True) -> list[str]:
    """The templates averaged for ``choice`` (``ensemble_with_template``: the dataset's rule)."""
    if choice == "dataset":
        return [dataset_template]
    if choice == "ensemble" or not ensemble_with_template:
        return list(ENSEMBLE_TEMPLATES)
    return [*ENSEMBLE_TEMPLATES, dataset_template]  # ZeroshotCLIP2's order


@register
class ZeroShot(PromptMethod):
    name = "zeroshot"
    description = "zero-shot CLIP: hand-written template(s), nothing trained"
    Config = ZeroShotConfig
    trains_by_gradient = False
    frozen_image_encoder = True
    needs_training_data = False

    def __init__(self, config, backbone, classnames, template="a photo of a {}."):
        super().__init__(config, backbone, classnames, template)
        self.set_classnames(classnames)

    def build_class_buffers(self) -> None:
        self.register_buffer("text_features", None, persistent=False)  # computed on first use

    def encode_text(self):
        if self.text_features is None:
            templates = resolve_templates(self.config.templates, self.template, self.ensemble_with_template)
            with full_precision(self.backbone.logit_scale):
                self.text_features = zeroshot_classifier(self.backbone, self.classnames, templates)
        return self.text_features

    @classmethod
    def count_parameters(cls, config, backbone, n_cls):
        return 0
