"""The one place that maps a precision name to autocast, grad scaling and casting.

- ``auto``: fp32 on CPU; on CUDA bf16 autocast where supported, else fp16 autocast + grad scaler.
- ``fp32``: no autocast.
- ``bf16`` / ``fp16``: autocast of the frozen backbone's compute; trainable tensors stay fp32
  (fp16 adds a grad scaler).
- ``legacy-fp16``: the reference code's choice: the whole backbone *and* the prompts in half,
  no loss scaling. Offered for comparison; known to produce non-finite losses.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import torch

from upt.errors import UptError

PrecisionName = Literal["auto", "fp32", "bf16", "fp16", "legacy-fp16"]
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "legacy-fp16")


@dataclass
class Precision:
    """Resolved precision for one device."""

    name: str
    device_type: str
    autocast_dtype: torch.dtype | None
    model_dtype: torch.dtype
    use_scaler: bool

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast_dtype)

    def scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.use_scaler)

    def prepare(self, backbone, method) -> None:
        """Cast the backbone (and, in legacy mode, the method) to this precision's storage dtype."""
        backbone.model.to(self.model_dtype)
        if self.model_dtype != torch.float32:
            method.to(self.model_dtype)


def resolve_precision(name: str, device: str | torch.device) -> Precision:
    """Turn a precision name into what the engine applies on ``device``."""
    if name not in PRECISIONS:
        raise UptError(f"Unknown precision '{name}'; choose one of {', '.join(PRECISIONS)}.")
    device_type = torch.device(device).type
    if name == "auto":
        if device_type != "cuda":
            name = "fp32"
        else:
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp32":
        return Precision(name, device_type, None, torch.float32, False)
    if name == "legacy-fp16":
        if device_type != "cuda":
            raise UptError("legacy-fp16 needs a CUDA device; use fp32 on the CPU.")
        return Precision(name, device_type, None, torch.float16, False)
    dtype = torch.bfloat16 if name == "bf16" else torch.float16
    if device_type == "cpu" and name == "fp16":
        raise UptError("fp16 autocast is not supported on the CPU; use fp32 or bf16.")
    return Precision(name, device_type, dtype, torch.float32, name == "fp16" and device_type == "cuda")
