"""The single training loop for every method: SGD/AdamW, constant warm-up then cosine, per epoch
(or the method's own per-step schedule).

The engine never branches on a method's name: it asks the method contract
(``trains_by_gradient``, ``parameters()``, ``forward``, ``regularization()``, ``step_schedule()``)
and nothing else. Randomness of epoch
``e`` (data order, augmentation, dropout) is seeded from ``(seed, e)``, so a run resumed after
any epoch continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from upt.engine.config import OptimConfig
from upt.engine.precision import Precision
from upt.errors import UptError
from upt.methods.base import StepSchedule

log = logging.getLogger(__name__)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` of a run seeded ``seed`` (pure arithmetic, no hashing)."""
    return (seed * 1_000_003 + epoch * 7919) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def build_optimizer(params: list[torch.nn.Parameter], optim: OptimConfig, eps: float | None = None
                    ) -> torch.optim.Optimizer:
    """SGD or AdamW from ``optim``; ``eps``: AdamW's epsilon where a method's reference sets one."""
    if optim.name == "sgd":
        return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay, **({"eps": eps} if eps else {}))


def lr_at(epoch: int, optim: OptimConfig, epochs: int) -> float:
    """Learning rate of ``epoch`` (0-based): constant warm-up, then cosine decay over the run.

    Dassl's constant warm-up with ``WARMUP_RECOUNT`` (every reference config's default): epochs
    ``e < w`` run at ``warmup_lr``; the cosine scheduler, built over ``T = epochs``, only starts
    stepping after the warm-up, so epoch ``e >= w`` runs at ``lr·½(1 + cos(π(e − w)/T))``: the
    first epoch after warm-up is at the full learning rate.
    """
    w = optim.warmup_epochs
    if epoch < w:
        return optim.warmup_lr
    return 0.5 * optim.lr * (1 + math.cos(math.pi * (epoch - w) / epochs))


def _finite_everywhere(loss: torch.Tensor, world: int) -> bool:
    """Whether the loss is finite on every rank: all ranks stop together rather than one waiting
    forever in the gradient all-reduce of the others."""
    ok = torch.isfinite(loss.detach())
    if world > 1:
        import torch.distributed as dist

        flag = ok.to(torch.float32).reshape(1)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        ok = flag[0] > 0
    return bool(ok)


def batch_loss(logits: torch.Tensor, labels: torch.Tensor, extra: torch.Tensor | None, world: int,
               batch: int) -> torch.Tensor:
    """Cross-entropy of one batch plus the method's regulariser ``extra`` (a batch mean). With ``world`` > 1
    processes each rank's summed loss, and its regulariser as its share of the ``batch`` images of the global
    batch, are scaled so that DDP's gradient average equals the mean over the global batch, exactly as
    one process would compute it."""
    if world == 1:
        loss = F.cross_entropy(logits.float(), labels)
        return loss if extra is None else loss + extra.float()
    loss = F.cross_entropy(logits.float(), labels, reduction="sum") * (world / batch)
    return loss if extra is None else loss + extra.float() * (world * len(labels) / batch)


class Trainer:
    """Optimiser, scaler and the per-epoch loop for one method. ``schedule``: the method's own
    per-step schedule (:meth:`PromptMethod.step_schedule`), which replaces the per-epoch one."""

    def __init__(self, method: torch.nn.Module, optim: OptimConfig, epochs: int, precision: Precision,
                 schedule: StepSchedule | None = None):
        self.method = method
        self.optim_cfg = optim
        self.epochs = epochs
        self.precision = precision
        self.schedule = schedule
        self.params = [p for p in method.parameters() if p.requires_grad]
        if not self.params:
            raise UptError(f"Method '{method.name}' has no trainable parameters to optimise.")
        self.optimizer = build_optimizer(self.params, optim, schedule.eps if schedule else None)
        self.scaler = precision.scaler()
        self.step = 0

    def run_epoch(
        self,
        epoch: int,
        batches: Iterable,
        forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
        on_step: Callable[[dict], None] | None = None,
        global_size: Callable[[int], int] | None = None,
    ) -> dict:
        """One epoch over ``batches`` of (inputs, labels, ...).

        Args:
            forward: maps inputs to logits (default: the method itself; cached-feature training
                passes ``method.logits``; data-parallel training its DDP wrapper).
            global_size: with several processes, the size of the global batch at a step of the
                epoch: each rank's summed loss is scaled so DDP's gradient average equals the
                mean over the global batch, exactly as one process would compute it.
        """
        from upt.engine.distributed import world_size

        world = world_size()
        lr = self._set_lr(lr_at(epoch, self.optim_cfg, self.epochs))
        forward = forward or self.method
        device = self.method.backbone.device
        self.method.train()
        total_loss, correct, seen, start = 0.0, 0, 0, time.perf_counter()
        for i, (inputs, labels, *_) in enumerate(batches):
            if self.schedule is not None:
                lr = self._set_lr(self.schedule.lr(self.step, self.optim_cfg.lr))
            inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            n = len(labels)
            batch = global_size(i) if world > 1 else n  # the global batch of this step
            with self.precision.autocast():
                logits = forward(inputs)  # fp32: every method computes its final similarity outside autocast
                extra = self.method.regularization()
            loss = batch_loss(logits, labels, extra, world, batch)
            if not _finite_everywhere(loss, world):
                raise UptError(f"The loss became non-finite ({loss.item()} here) at epoch {epoch + 1}, step "
                               f"{self.step + 1}; training stopped. {self.advice()}.")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            total_loss += loss.item() * (n if world == 1 else batch / world)
            correct += int((logits.argmax(1) == labels).sum())
            seen += n
            if on_step is not None:  # images: this step's global batch (what the epoch's total counts)
                on_step({"epoch": epoch + 1, "step": self.step, "lr": lr, "images": batch,
                         "loss": total_loss / seen if world == 1 else loss.item()})  # running mean on one process
            if self.done():
                break
        seconds = time.perf_counter() - start
        return {
            "epoch": epoch + 1,
            "lr": lr,
            "loss": total_loss / max(1, seen),
            "train_accuracy": 100.0 * correct / max(1, seen),
            "images": seen,
            "seconds": seconds,
        }

    def _set_lr(self, lr: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def advice(self) -> str:
        """What to try after a non-finite loss or parameter."""
        advice = f"Lower the learning rate (optim.lr={self.optim_cfg.lr})"
        if self.precision.name != "fp32":
            advice += f" or use precision fp32 or bf16 instead of {self.precision.name}"
        return advice

    def done(self) -> bool:
        return ((self.optim_cfg.max_steps is not None and self.step >= self.optim_cfg.max_steps)
                or (self.schedule is not None and self.step >= self.schedule.steps))

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        from upt.engine.checkpoint import optimizer_to_files

        tensors, opt_meta = optimizer_to_files(self.optimizer)
        return tensors, {"optimizer": opt_meta, "scaler": self.scaler.state_dict(), "step": self.step}

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        from upt.engine.checkpoint import optimizer_from_files

        optimizer_from_files(self.optimizer, tensors, meta["optimizer"])
        if meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        self.step = int(meta["step"])
