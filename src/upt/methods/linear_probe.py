"""Linear probe (Radford et al., 2021), as CoOp's ``lpclip`` runs it: logistic regression on frozen
image features.

Multinomial logistic regression fitted with L-BFGS to scikit-learn's objective (summed
cross-entropy + ||W||² / 2C, intercept unpenalised; ``lpclip`` uses ``LogisticRegression(solver=
"lbfgs", max_iter=1000, penalty="l2")``). C is chosen on the few-shot validation split (min(K, 4)
images per class, as ``lpclip``'s ``val_shot_list``) exactly as ``lpclip/linear_probe.py`` searches:

1. the grid 1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6; the peak is the first best validation accuracy;
2. ``search_steps`` (8) refinements of [peak/10, peak·10]: fit both ends, keep the better (ties go to
   the smaller C) and halve the interval towards it in log space; the last kept C is the result.

Deliberate differences (docs/fidelity.md): features are L2-normalised by default (``normalize``;
``lpclip`` fits raw features), so the probe sees the image as every other method here does, on
the cosine scale, and its C is comparable across backbones; ``normalize: false`` is ``lpclip``'s
reading. When the grid's peak sits at its edge, the grid is extended outward by factors of 100 while
validation accuracy strictly improves (to 1e±12), so the optimum is never capped by the range. Each
fit starts from the previous one's solution (the objective is strictly convex: same optimum, fewer
iterations). The classifier only knows the classes it was fitted on, so :meth:`set_classnames`
accepts a subset or reordering of them, not new classes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from upt.errors import UptError
from upt.methods.base import PromptMethod, full_precision, l2, register

log = logging.getLogger(__name__)
C_LIMITS = (1e-12, 1e12)


@dataclass
class LinearProbeConfig:
    """``c_grid``: the initial C values (scikit-learn's inverse regularisation), searched in this
    order; ``search_steps``: refinements around the best; ``max_iter``: L-BFGS iterations per fit;
    ``normalize``: fit L2-normalised features (False: raw features, as ``lpclip``)."""

    c_grid: tuple[float, ...] = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)  # lpclip/linear_probe.py search_list
    search_steps: int = 8  # lpclip/linear_probe.sh --num_step 8
    max_iter: int = 1000  # lpclip: LogisticRegression(max_iter=1000)
    normalize: bool = True

    def __post_init__(self):
        self.c_grid = tuple(float(c) for c in self.c_grid)
        if not self.c_grid or min(self.c_grid) <= 0:
            raise UptError("c_grid must hold positive regularisation values.")
        if self.max_iter <= 0:
            raise UptError(f"max_iter must be positive, got {self.max_iter}.")
        if self.search_steps < 0:
            raise UptError(f"search_steps must be >= 0, got {self.search_steps}.")


def search_c(score: Callable[[float], float], grid: Sequence[float], steps: int) -> tuple[float, list[float]]:
    """CoOp's ``lpclip`` search for C, given ``score(C)`` (validation accuracy of the fit at C).

    The peak of ``grid`` (first best, in grid order), moved outward by factors of 100 while the
    score strictly improves when it sits at the grid's edge, then ``steps`` refinements of
    [peak/10, peak·10] towards the better end (ties: the smaller C). Returns the last kept C and the
    grid searched.
    """
    grid = list(grid)
    accs = [score(c) for c in grid]
    peak = grid[accs.index(max(accs))]
    for edge, factor in ((max, 100.0), (min, 0.01)):  # the optimum may lie beyond either end of the grid
        while peak == edge(grid) and C_LIMITS[0] <= peak * factor <= C_LIMITS[1]:
            if score(peak * factor) <= score(peak):
                break
            peak = peak * factor
            grid.append(peak)
    c_final, left, right = peak, peak / 10, peak * 10
    for _ in range(steps):
        mid = 10 ** (0.5 * (math.log10(left) + math.log10(right)))
        if score(left) < score(right):
            c_final, left = right, mid
        else:
            c_final, right = left, mid
    return c_final, grid


@register
class LinearProbe(PromptMethod):
    name = "linear-probe"
    description = "logistic regression (L-BFGS) on frozen image features, C searched as CoOp's lpclip"
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

    def image_features(self, raw):
        return l2(raw) if self.config.normalize else raw.float()

    def logits(self, image_features, text_features=None):
        idx = self.index.to(self.weight.device)
        with full_precision(image_features):
            return image_features.float() @ self.weight[idx].float().t() + self.bias[idx].float()

    def fit_features(self, train, val):
        x, y = train
        vx, vy = val
        if not len(vy):
            log.warning("no validation images: the linear probe cannot choose C; using scikit-learn's default C=1")
            w, b = self._fit(x, y, 1.0)
            self.weight.copy_(w)
            self.bias.copy_(b)
            return {"linear_probe_c": 1.0, "linear_probe_val_acc": None}
        fits: dict[float, tuple] = {}

        def score(c: float) -> float:
            if c not in fits:
                nearest = min(fits, key=lambda k: abs(math.log10(k) - math.log10(c)), default=None)
                w, b = self._fit(x, y, c, fits[nearest][1] if nearest is not None else None)
                acc = float(((vx.float() @ w.t() + b).argmax(1) == vy).float().mean().item()) * 100
                fits[c] = (acc, (w, b))
            return fits[c][0]

        c_final, grid = search_c(score, self.config.c_grid, self.config.search_steps)
        w, b = fits[c_final][1]
        self.weight.copy_(w)
        self.bias.copy_(b)
        return {"linear_probe_c": c_final, "linear_probe_val_acc": fits[c_final][0],
                "linear_probe_grid": sorted(grid, reverse=True)}

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
