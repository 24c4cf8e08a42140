"""Linear probe (Radford et al., 2021; CoOp's baseline): logistic regression on frozen features.

Multinomial logistic regression on L2-normalised image features, fitted with L-BFGS to
scikit-learn's objective (summed cross-entropy + ||W||² / 2C), as CoOp's protocol does with
scikit-learn. C is chosen on the few-shot validation split from a log-spaced grid, walked from
strong to weak regularisation with each fit starting from the previous optimum. Deviation: the
classifier only knows the classes it was fitted on, so :meth:`set_classnames` accepts a subset or
reordering of them, not new classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from upt.errors import UptError
from upt.methods.base import PromptMethod, register


@dataclass
class LinearProbeConfig:
    """``c_grid``: inverse regularisation strengths tried (scikit-learn's C); ``max_iter``: L-BFGS steps."""

    c_grid: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
    max_iter: int = 300

    def __post_init__(self):
        self.c_grid = tuple(float(c) for c in self.c_grid)
        if not self.c_grid or min(self.c_grid) <= 0:
            raise UptError("c_grid must hold positive regularisation values.")
        if self.max_iter <= 0:
            raise UptError(f"max_iter must be positive, got {self.max_iter}.")


@register
class LinearProbe(PromptMethod):
    name = "linear-probe"
    description = "logistic regression (L-BFGS) on frozen image features"
    Config = LinearProbeConfig
    trains_by_gradient = False
    frozen_image_encoder = True
    open_vocabulary = False
    uses_text = False

    def __init__(self, config, backbone, classnames, template="a photo of a {}."):
        super().__init__(config, backbone, classnames, template)
        n, d = len(classnames), backbone.embed_dim
        self.register_buffer("weight", torch.zeros(n, d))
        self.register_buffer("bias", torch.zeros(n))
        self.fitted_classnames = list(classnames)
        self.set_classnames(classnames)

    def build_class_buffers(self) -> None:
        unknown = [c for c in self.classnames if c not in self.fitted_classnames]
        if unknown:
            raise UptError(
                f"A linear probe only knows the classes it was fitted on; {unknown[:3]} are new. "
                "Use a prompt method (coop, upt, ...) to classify unseen classes."
            )
        self.index = torch.tensor([self.fitted_classnames.index(c) for c in self.classnames])

    def logits(self, image_features, text_features=None):
        idx = self.index.to(self.weight.device)
        return image_features.float() @ self.weight[idx].float().t() + self.bias[idx].float()

    def fit_features(self, train, val):
        x, y = train
        vx, vy = val
        best_c, best_acc, best, start = self.config.c_grid[0], -1.0, None, None
        for c in sorted(self.config.c_grid):  # strong to weak regularisation, each from the last optimum
            start = self._fit(x, y, c, start)
            acc = ((vx.float() @ start[0].t() + start[1]).argmax(1) == vy).float().mean().item() if len(vy) else 0.0
            if acc > best_acc:
                best_c, best_acc, best = c, acc, start
        w, b = best
        self.weight.copy_(w)
        self.bias.copy_(b)
        return {"linear_probe_c": best_c, "linear_probe_val_acc": best_acc}

    def _fit(self, x: torch.Tensor, y: torch.Tensor, c: float, start=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Minimise sum CE + ||W||² / (2C) (scikit-learn's objective) with L-BFGS, from ``start`` or zeros."""
        x = x.float()
        n_cls = len(self.fitted_classnames)
        if start is None:
            start = torch.zeros(n_cls, x.shape[1], device=x.device), torch.zeros(n_cls, device=x.device)
        w, b = (t.clone().requires_grad_(True) for t in start)
        opt = torch.optim.LBFGS([w, b], lr=1, max_iter=self.config.max_iter, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(x @ w.t() + b, y, reduction="sum") + (w * w).sum() / (2 * c)
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return w.detach(), b.detach()

    @classmethod
    def count_parameters(cls, config, backbone, n_cls):
        return n_cls * (backbone.embed_dim + 1)
