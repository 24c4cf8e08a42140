"""PromptSRC: Self-regulating Prompts: Foundational Model Adaptation without Forgetting (Khattak et al., ICCV 2023).

Independent deep prompts in both encoders (the authors' IVLP design): text prompts of 4 tokens in
the first 9 text layers, layer 0's taking the word slots of "a photo of a {classname}." (initialised
from their embeddings) and deeper ones replacing those positions; visual prompts of 4 tokens in the
first 9 vision layers, layer 0's appended after the patches before ``ln_pre``, deeper ones replacing
the last 4 tokens (MaPLe's seams, but not coupled: each ~ N(0, 0.02²)).

Training loss (``trainers/promptsrc.py``), with ``w``/``f`` the prompted normalised text/image
features, ``w̃`` the normalised mean of the frozen model's raw text features over 60 templates,
``f̃`` the frozen model's normalised image features and ``s`` CLIP's temperature:

    L = CE(s·f·wᵀ) + 25·mean|w − w̃| + 10·mean|f − f̃| + Σ p̃ (log p̃ − log p) / (B·n_cls)

with ``p = softmax(s·f·wᵀ)`` and ``p̃ = softmax(s·f̃·w̃ᵀ)`` (temperature 1). Gaussian prompt
aggregation (GPA): after epoch e (1-based) of E, ``aggregate += g_e · prompts`` with ``g_e`` the
N(μ, σ²) density at e normalised over 1..E; after the last epoch the prompts become the aggregate.
Deviations (docs/fidelity.md): prompts keep the compute dtype (the reference casts them to fp16 even
in fp32 runs); GPA aggregates the prompts alone in fp32 (the reference weights and sums the whole
model's fp16 state, frozen CLIP included, which rounds the frozen weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from upt.errors import UptError
from upt.methods.base import PromptMethod, full_precision, l2, normal_param, register
from upt.methods.text_prompt import PromptTemplate, phrase_length

# trainers/imagenet_templates.py IMAGENET_TEMPLATES of the PromptSRC release (60 of CLIP's 80).
PROMPTSRC_TEMPLATES = (
    "a photo of a {}.", "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a photo of the hard to see {}.", "a low resolution photo of the {}.", "a rendering of a {}.",
    "graffiti of a {}.", "a bad photo of the {}.", "a cropped photo of the {}.", "a tattoo of a {}.",
    "the embroidered {}.", "a photo of a hard to see {}.", "a bright photo of a {}.", "a photo of a clean {}.",
    "a photo of a dirty {}.", "a dark photo of the {}.", "a drawing of a {}.", "a photo of my {}.",
    "the plastic {}.", "a photo of the cool {}.", "a close-up photo of a {}.", "a black and white photo of the {}.",
    "a painting of the {}.", "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.",
    "a bright photo of the {}.", "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.",
    "a rendering of the {}.", "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.",
    "a close-up photo of the {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.",
    "a doodle of the {}.", "a origami {}.", "a low resolution photo of a {}.", "the toy {}.",
    "a rendition of the {}.", "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.",
    "a photo of a nice {}.", "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.",
    "a sketch of the {}.", "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.",
)


@dataclass
class PromptSRCConfig:
    """``n_ctx_text``/``n_ctx_vision``: prompt tokens per layer; ``depth_text``/``depth_vision``:
    prompted layers (vision 0: no visual prompts); ``ctx_init``: the phrase layer-0 text prompts
    start from (used when ``n_ctx_text`` <= its tokens, else N(0, 0.02²) as the reference);
    ``text_loss_weight``/``image_loss_weight``: the L1 weights; ``gpa_mean``/``gpa_std``: μ, σ of the
    Gaussian over epochs (1-based)."""

    n_ctx_text: int = 4
    n_ctx_vision: int = 4
    depth_text: int = 9
    depth_vision: int = 9
    ctx_init: str = "a photo of a"
    text_loss_weight: float = 25.0
    image_loss_weight: float = 10.0
    gpa_mean: float = 15.0
    gpa_std: float = 1.0

    def __post_init__(self):
        if self.n_ctx_text <= 0 or self.n_ctx_vision <= 0:
            raise UptError(f"n_ctx_text and n_ctx_vision must be positive, got {self.n_ctx_text}, {self.n_ctx_vision}.")
        if self.depth_text < 1 or self.depth_vision < 0:
            raise UptError(f"depth_text must be >= 1 and depth_vision >= 0, got {self.depth_text}, {self.depth_vision}.")
        if self.text_loss_weight < 0 or self.image_loss_weight < 0:
            raise UptError("text_loss_weight and image_loss_weight must be >= 0.")
        if self.gpa_std <= 0:
            raise UptError(f"gpa_std must be positive, got {self.gpa_std}.")


def check_depths(config: PromptSRCConfig, backbone) -> None:
    backbone.text.require_prompts("PromptSRC")
    if config.depth_vision:
        backbone.vision.require_prompts("PromptSRC")
    for what, depth, layers in (("text", config.depth_text, backbone.text.layers),
                                ("vision", config.depth_vision, backbone.vision.layers)):
        if depth > layers:
            raise UptError(f"PromptSRC depth_{what} {depth} exceeds the {layers} {what} layers of backbone "
                           f"'{backbone.name}'; set it to at most {layers}.")


def gpa_weights(mean: float, std: float, epochs: int) -> list[float]:
    """g_e = N(e; mean, std²) for e = 1..epochs, normalised to sum 1 (the reference's ``get_gauss``)."""
    g = [math.exp(-0.5 * ((e - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi)) for e in range(1, epochs + 1)]
    total = sum(g)
    if not total > 0:
        raise UptError(f"GPA weights vanish: a Gaussian of mean {mean} and std {std} is zero on epochs 1..{epochs}; "
                       "set method_config.gpa_mean inside the run or a larger gpa_std.")
    return [x / total for x in g]


@torch.no_grad()
def frozen_text_features(backbone, classnames, templates, chunk_size: int = 256) -> torch.Tensor:
    """Normalised mean of the frozen model's raw text features over ``templates`` (n_cls, D), in fp32."""
    from upt.data import clean_classname

    text, total = backbone.text, None
    with full_precision(backbone.logit_scale):
        for template in templates:
            prompts = [template.format(clean_classname(c)) for c in classnames]
            feats = torch.cat([text.encode_ids(text.tokenize(prompts[s : s + chunk_size]).to(backbone.device)).float()
                               for s in range(0, len(prompts), chunk_size)])
            total = feats if total is None else total + feats
    return l2(total / len(templates))


@register
class PromptSRC(PromptMethod):
    name = "promptsrc"
    description = "PromptSRC: deep text + visual prompts held near frozen CLIP, Gaussian-averaged over epochs"
    Config = PromptSRCConfig

    def __init__(self, config, backbone, classnames, template="a photo of a {}."):
        super().__init__(config, backbone, classnames, template)
        check_depths(config, backbone)
        d_t, d_v, m = backbone.text.width, backbone.vision.width, config.n_ctx_text
        phrase = config.ctx_init if config.ctx_init.strip() and m <= phrase_length(backbone, config.ctx_init) else ""
        self.prompt = PromptTemplate(backbone, m, "end", phrase)
        self.ctx = nn.Parameter(self.prompt.init_context())  # layer-0 text prompts (M, d_t)
        self.deep_ctx = nn.ParameterList([normal_param(m, d_t) for _ in range(config.depth_text - 1)])
        self.visual = nn.ParameterList([normal_param(config.n_ctx_vision, d_v) for _ in range(config.depth_vision)])
        self._gpa: dict[str, torch.Tensor] = {}
        self.set_classnames(classnames)

    def build_class_buffers(self) -> None:
        self.prompt.build(self.classnames)
        self._frozen_text: torch.Tensor | None = None  # computed when training first needs it
        self._kept: tuple | None = None

    def frozen_text(self) -> torch.Tensor:
        """w̃ (n_cls, D): the frozen model's text features over the 60 templates."""
        if self._frozen_text is None:
            self._frozen_text = frozen_text_features(self.backbone, self.classnames, PROMPTSRC_TEMPLATES)
        return self._frozen_text

    def encode_text(self) -> torch.Tensor:
        return l2(self.prompt.encode(self.ctx, layer_prompts=[None, *self.deep_ctx], prompt_start=1,
                                     chunk_size=self.text_chunk_size, grad_checkpointing=self.grad_checkpointing))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        if not len(self.visual):
            return super().encode_image(images)
        v = self.backbone.vision
        return l2(v.encode(v.embed(images), list(self.visual), "appended", self.grad_checkpointing))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        image = self.encode_image(images)
        text = self._text_cache if self._text_cache is not None else self.encode_text()
        logits = self.logits(image, text)
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                frozen_image = super().encode_image(images)  # f̃: the frozen model, no prompts
            self._kept = (image, text, frozen_image, logits)
        return logits

    def regularization(self) -> torch.Tensor | None:
        """The self-regulating terms of the last training forward (L1 text, L1 image, KL on logits)."""
        kept, self._kept = self._kept, None
        if kept is None:
            return None
        image, text, frozen_image, logits = kept
        frozen_text = self.frozen_text()
        c = self.config
        with full_precision(logits):
            frozen_logits = self.backbone.logit_scale.float() * (frozen_image.float() @ frozen_text.float().t())
            l_text = F.l1_loss(text.float(), frozen_text.float()) * c.text_loss_weight
            l_image = F.l1_loss(image.float(), frozen_image.float()) * c.image_loss_weight
            kl = F.kl_div(F.log_softmax(logits.float(), dim=1), F.log_softmax(frozen_logits, dim=1),
                          reduction="sum", log_target=True) / logits.numel()
            return l_text + l_image + kl

    @torch.no_grad()
    def on_epoch_end(self, epoch: int, epochs: int) -> dict:
        """GPA: add this epoch's weighted prompts to the aggregate; after the last epoch, use it."""
        weight = gpa_weights(self.config.gpa_mean, self.config.gpa_std, epochs)[epoch]
        for name, p in self.named_parameters():
            part = p.detach().float() * weight
            self._gpa[name] = part if name not in self._gpa else self._gpa[name] + part
        if epoch + 1 == epochs:
            for name, p in self.named_parameters():
                p.copy_(self._gpa[name])
        return {"gpa_weight": weight}

    def training_state(self) -> dict[str, torch.Tensor]:
        return {f"gpa.{k}": v for k, v in self._gpa.items()}

    def load_training_state(self, state: dict[str, torch.Tensor]) -> None:
        self._gpa = {k[len("gpa."):]: v.float() for k, v in state.items() if k.startswith("gpa.")}

    @classmethod
    def count_parameters(cls, config, backbone, n_cls):
        check_depths(config, backbone)
        return (config.depth_text * config.n_ctx_text * backbone.text.width
                + config.depth_vision * config.n_ctx_vision * backbone.vision.width)
