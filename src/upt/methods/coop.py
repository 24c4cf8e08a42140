"""CoOp: Learning to Prompt for Vision-Language Models (Zhou et al., IJCV 2022).

Learned context vectors replace the words of the prompt: ``[SOS] T classname . [EOS]``, with the
class name at the end, in the middle or at the front, and context shared by all classes or
class-specific. The image side is untouched, so image features may be cached.
Deviation: none in the maths; sequences are cut after the last ``[EOS]`` (exact, faster).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from upt.errors import UptError
from upt.methods.base import PromptMethod, l2, register
from upt.methods.text_prompt import CLASS_POSITIONS, PromptTemplate, phrase_length


@dataclass
class CoOpConfig:
    """``n_ctx``: context length (ignored when ``ctx_init`` is set: the phrase's token count);
    ``ctx_init``: phrase to start from (e.g. "a photo of a"), empty for N(0, 0.02²);
    ``class_token_position``: end, middle or front; ``csc``: class-specific context (random
    init only: the reference ignores ``csc`` when ``ctx_init`` is set, so the pair is refused)."""

    n_ctx: int = 16
    ctx_init: str = ""
    class_token_position: Literal["end", "middle", "front"] = "end"
    csc: bool = False

    def __post_init__(self):
        if self.n_ctx <= 0:
            raise UptError(f"n_ctx must be a positive number of context tokens, got {self.n_ctx}.")
        if self.class_token_position not in CLASS_POSITIONS:
            raise UptError(
                f"Unknown class_token_position '{self.class_token_position}'; choose end, middle or front."
            )
        if self.csc and self.ctx_init.strip():
            # The reference PromptLearner silently learns one shared context when CTX_INIT is set,
            # whatever CSC says; refusing keeps a run from claiming a setting it did not train.
            raise UptError("csc: true cannot be combined with ctx_init: CoOp's reference code ignores class-specific "
                           "context when an init phrase is set. Set ctx_init to '' for class-specific random "
                           "context, or csc to false for one shared context from the phrase.")


def context_length(config: CoOpConfig, backbone) -> int:
    return phrase_length(backbone, config.ctx_init) if config.ctx_init.strip() else config.n_ctx


@register
class CoOp(PromptMethod):
    name = "coop"
    description = "CoOp: learned text context, frozen image encoder"
    Config = CoOpConfig
    frozen_image_encoder = True

    def __init__(self, config, backbone, classnames, template="a photo of a {}."):
        super().__init__(config, backbone, classnames, template)
        m = context_length(config, backbone)
        self.prompt = PromptTemplate(backbone, m, config.class_token_position, config.ctx_init)
        ctx = self.prompt.init_context()
        if config.csc:
            ctx = ctx.expand(len(classnames), -1, -1).clone()
        self.ctx = nn.Parameter(ctx)
        self.set_classnames(classnames)

    def build_class_buffers(self) -> None:
        if self.config.csc and self.ctx.shape[0] != len(self.classnames):
            raise UptError(
                f"Class-specific context was learned for {self.ctx.shape[0]} classes; it cannot serve "
                f"{len(self.classnames)}. Use generic context (csc: false) to change classes."
            )
        self.prompt.build(self.classnames)

    def encode_text(self):
        return l2(self.prompt.encode(self.ctx, chunk_size=self.text_chunk_size,
                                     grad_checkpointing=self.grad_checkpointing))

    @classmethod
    def count_parameters(cls, config, backbone, n_cls):
        m = context_length(config, backbone)
        return m * backbone.text.width * (n_cls if config.csc else 1)
