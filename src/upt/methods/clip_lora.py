"""CLIP-LoRA: Low-Rank Few-Shot Adaptation of Vision-Language Models (Zanella & Ben Ayed, CVPRW 2024).

Low-rank updates of the query, key and value projections of every attention block of both encoders.
For a projection ``W`` (d×d) applied to ``h`` (the block's ``ln_1`` output):

    W h + b + s · B A dropout(h),   A ∈ R^{r×d}, B ∈ R^{d×r},   s = α / √r

with r = 2, α = 1, dropout 0.25 (a separate mask per projection), ``A`` Kaiming-uniform (a = √5) and
``B`` zero, so training starts from CLIP itself. ``s = α/√r`` is the released ``loralib``'s scaling
(loralib's original ``α/r`` is commented out there). open_clip fuses q, k, v into one ``in_proj``:
each update is added to its third of the fused projection; the output projection takes one only
when ``params`` lists ``o``. Class text features come from "a photo of a {}." for every dataset
(the release's ``datasets/*.py`` comment their own templates out), through the adapted text encoder
at every step (``lora.py``); logits are CLIP's scaled cosines. Only ``A`` and ``B`` are trained and saved.

Training as ``main.py``/``lora.py``: AdamW (lr 2e-4, weight decay 1e-2, betas 0.9/0.999), batch 32,
``500 × shots`` iterations with a cosine stepped every iteration down to 1e-6 and no warm-up; the
last iterate is evaluated (``VALIDATION = False``). Deviations (docs/fidelity.md): the temperature
is the backbone's (the reference writes 100); the last incomplete batch of an epoch is dropped when
the set holds a full batch (Dassl's rule, the engine's; the reference keeps it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from upt.data import clean_classname
from upt.errors import UptError
from upt.methods.base import PromptMethod, StepSchedule, l2, register
from upt.methods.text_prompt import zeroshot_classifier

PROJECTIONS = ("q", "k", "v", "o")
ENCODERS = ("both", "text", "vision")


@dataclass
class CLIPLoRAConfig:
    """``rank``: r; ``alpha``: α (scaling α/√r); ``dropout``: on the update's input; ``params``: the
    projections adapted (q, k, v, o); ``encoders``: both, text or vision; ``layers``: the blocks adapted
    (None: every block); ``iterations_per_shot``: total iterations = this × shots, unless
    ``iterations`` is set; ``eta_min``: where the per-iteration cosine ends; ``template``: the class
    prompt (``dataset``: the dataset's own template)."""

    rank: int = 2
    alpha: float = 1.0
    dropout: float = 0.25
    params: tuple[str, ...] = ("q", "k", "v")
    encoders: Literal["both", "text", "vision"] = "both"
    layers: tuple[int, ...] | None = None
    iterations_per_shot: int = 500
    iterations: int | None = None
    eta_min: float = 1e-6
    template: str = "a photo of a {}."

    def __post_init__(self):
        self.params = tuple(self.params)
        if self.template != "dataset" and "{}" not in self.template:
            raise UptError(f"template must hold '{{}}' for the class name (or be 'dataset'), got {self.template!r}.")
        if self.rank <= 0:
            raise UptError(f"rank must be positive, got {self.rank}.")
        if not 0 <= self.dropout < 1:
            raise UptError(f"dropout must be in [0, 1), got {self.dropout}.")
        bad = [p for p in self.params if p not in PROJECTIONS]
        if bad or not self.params or len(set(self.params)) != len(self.params):
            raise UptError(f"params must list distinct projections among {', '.join(PROJECTIONS)}; got {list(self.params)}.")
        if self.encoders not in ENCODERS:
            raise UptError(f"Unknown encoders '{self.encoders}'; choose both, text or vision.")
        if self.layers is not None:
            self.layers = tuple(self.layers)
            if not self.layers or min(self.layers) < 0:
                raise UptError(f"layers must list block indices >= 0 (or be null for all), got {list(self.layers)}.")
        if self.iterations_per_shot <= 0 or (self.iterations is not None and self.iterations <= 0):
            raise UptError("iterations_per_shot and iterations must be positive.")
        if self.eta_min < 0:
            raise UptError(f"eta_min must be >= 0, got {self.eta_min}.")


class LoRAStack(nn.Module):
    """The low-rank updates of one tower's attention projections, as :func:`run_blocks`' ``delta``."""

    def __init__(self, width: int, layers: Sequence[int], config: CLIPLoRAConfig):
        super().__init__()
        self.width, self.params, self.dropout = width, config.params, config.dropout
        self.scaling = config.alpha / math.sqrt(config.rank)
        self.blocks = nn.ModuleDict()
        for layer in layers:
            pairs = nn.ParameterDict()
            for p in config.params:
                a = torch.empty(config.rank, width)
                nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # loralib: A as nn.Linear's default, B zero
                pairs[f"{p}_A"], pairs[f"{p}_B"] = nn.Parameter(a), nn.Parameter(torch.zeros(width, config.rank))
            self.blocks[str(layer)] = pairs

    def _update(self, pairs: nn.ParameterDict, p: str, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(x, self.dropout, self.training)  # a fresh mask per projection, as one nn.Dropout each
        return (x @ pairs[f"{p}_A"].t().to(x.dtype) @ pairs[f"{p}_B"].t().to(x.dtype)) * self.scaling

    def qkv(self, layer: int, h: torch.Tensor) -> torch.Tensor | None:
        pairs = self.blocks[str(layer)] if str(layer) in self.blocks else None
        if pairs is None or not set(self.params) & {"q", "k", "v"}:
            return None
        parts = [self._update(pairs, p, h) if p in self.params else h.new_zeros(*h.shape[:-1], self.width)
                 for p in ("q", "k", "v")]
        return torch.cat(parts, dim=-1)  # (N, L, 3D)

    def out(self, layer: int, a: torch.Tensor) -> torch.Tensor | None:
        if "o" not in self.params or str(layer) not in self.blocks:
            return None
        return self._update(self.blocks[str(layer)], "o", a)


def adapted_layers(config: CLIPLoRAConfig, layers: int, tower: str, backbone_name: str) -> list[int]:
    chosen = list(range(layers)) if config.layers is None else sorted(config.layers)
    if chosen and chosen[-1] >= layers:
        raise UptError(f"CLIP-LoRA layer {chosen[-1]} does not exist: the {tower} tower of '{backbone_name}' has "
                       f"{layers} blocks (0..{layers - 1}).")
    return chosen


def towers(config: CLIPLoRAConfig, backbone) -> dict[str, list[int]]:
    """The adapted blocks of each adapted tower (``text``, ``vision``), after checking the seams."""
    out = {}
    if config.encoders in ("both", "text"):
        backbone.text.require_prompts("CLIP-LoRA")
        out["text"] = adapted_layers(config, backbone.text.layers, "text", backbone.name)
    if config.encoders in ("both", "vision"):
        backbone.vision.require_prompts("CLIP-LoRA")
        out["vision"] = adapted_layers(config, backbone.vision.layers, "vision", backbone.name)
    return out


@register
class CLIPLoRA(PromptMethod):
    name = "clip-lora"
    description = "CLIP-LoRA: low-rank updates of q, k, v in every attention block of both encoders"
    Config = CLIPLoRAConfig

    def __init__(self, config, backbone, classnames, template="a photo of a {}."):
        super().__init__(config, backbone, classnames, template)
        adapted = towers(config, backbone)
        self.frozen_image_encoder = "vision" not in adapted
        self.text_lora = LoRAStack(backbone.text.width, adapted["text"], config) if "text" in adapted else None
        self.vision_lora = LoRAStack(backbone.vision.width, adapted["vision"], config) if "vision" in adapted else None
        self.truncate = True  # encode prompts up to their last [EOS] (exact); False: all 77 tokens, as lora.py
        self.set_classnames(classnames)

    def build_class_buffers(self) -> None:
        text = self.backbone.text
        template = self.template if self.config.template == "dataset" else self.config.template
        if self.text_lora is None:  # lora.py: the frozen zero-shot classifier of that template
            self.register_buffer("text_features", zeroshot_classifier(self.backbone, self.classnames, [template]),
                                 persistent=False)
            return
        ids = text.tokenize([template.format(clean_classname(c)) for c in self.classnames])
        ids = ids.to(self.backbone.device)
        with torch.no_grad():
            self.register_buffer("embeddings", text.embed(ids), persistent=False)  # (n_cls, L, d_t)
        self.register_buffer("ids", ids, persistent=False)

    def encode_text(self) -> torch.Tensor:
        if self.text_lora is None:
            return self.text_features
        return l2(self.backbone.text.encode(self.embeddings, self.ids, chunk_size=self.text_chunk_size,
                                            truncate=self.truncate, grad_checkpointing=self.grad_checkpointing,
                                            delta=self.text_lora))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        if self.vision_lora is None:
            return super().encode_image(images)
        v = self.backbone.vision
        return l2(v.encode(v.embed(images), grad_checkpointing=self.grad_checkpointing, delta=self.vision_lora))

    def step_schedule(self, epochs: int, steps_per_epoch: int, shots: int) -> StepSchedule:
        steps = self.config.iterations or self.config.iterations_per_shot * shots
        if steps <= 0:
            raise UptError("CLIP-LoRA trains for iterations_per_shot x shots iterations; with shots 0 (the whole "
                           "training split) set method_config.iterations.")
        return StepSchedule(steps=steps, eta_min=self.config.eta_min)  # lora.py: CosineAnnealingLR(total_iters)

    @classmethod
    def count_parameters(cls, config, backbone, n_cls):
        widths = {"text": backbone.text.width, "vision": backbone.vision.width}
        return sum(len(layers) * len(config.params) * 2 * config.rank * widths[tower]
                   for tower, layers in towers(config, backbone).items())
