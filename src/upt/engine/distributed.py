"""Data-parallel training with ``torch.distributed``: one process per device, prompts synchronised.

Launch with ``torchrun --nproc_per_node N -m upt train ...`` (single or multi node) or with
``upt train --devices N`` (single node; this module spawns the processes). Only the method's own
parameters are wrapped by DistributedDataParallel: the frozen CLIP is never in the optimizer and
never synchronised. Each global batch is the same set of images a single process would see, split
in contiguous slices across ranks, and the loss is scaled so the averaged gradient equals the
single-process one. Evaluation is sharded and gathered; only rank 0 writes the run folder.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

log = logging.getLogger(__name__)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def init_from_env() -> torch.device | None:
    """Join the process group described by torchrun's environment; returns this rank's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if not is_distributed():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if not is_main():
        logging.getLogger("upt").setLevel(logging.WARNING)
    return device


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list without distribution)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def shard(n: int) -> range:
    """This rank's contiguous part of ``range(n)`` (evaluation)."""
    r, w = rank(), world_size()
    per = -(-n // w)
    return range(min(n, r * per), min(n, (r + 1) * per))


def slice_of(batch: list[int], r: int, w: int) -> list[int]:
    """Rank ``r``'s contiguous slice of a global batch, sizes differing by at most one."""
    base, extra = divmod(len(batch), w)
    start = r * base + min(r, extra)
    return batch[start : start + base + (1 if r < extra else 0)]


class GlobalBatchSampler(Sampler[list[int]]):
    """Batches of a seeded permutation; each rank yields its slice of every global batch.

    With one process this is plain shuffled batching, so single- and multi-process runs see the
    same global batches for the same seed. As Dassl's training loader, the last incomplete batch
    is dropped when the set holds at least one full batch (``drop_last = n >= batch_size``).
    """

    def __init__(self, n: int, batch_size: int):
        self.n, self.batch_size, self.seed = n, batch_size, 0
        self.drop_last = n >= batch_size

    def set_seed(self, seed: int) -> None:
        self.seed = seed

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        for s in range(0, len(self) * self.batch_size, self.batch_size):
            yield slice_of(order[s : s + self.batch_size], rank(), world_size())

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def global_size(self, step_in_epoch: int) -> int:
        return min(self.batch_size, self.n - step_in_epoch * self.batch_size)

    @property
    def images(self) -> int:
        """Images one epoch trains on (all processes together)."""
        return min(self.n, len(self) * self.batch_size)


class _Entry(torch.nn.Module):
    """Exposes another entry point of a method (e.g. ``logits`` of cached features) as ``forward``."""

    def __init__(self, method: torch.nn.Module, fn: Callable):
        super().__init__()
        self.method, self.fn = method, fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def wrap(method: torch.nn.Module, entry: Callable | None = None) -> Callable:
    """What the training loop calls: ``entry`` (default: the method), under DistributedDataParallel
    when distributed. DDP sees the method's own parameters only (the backbone is not a submodule)."""
    if not is_distributed():
        return entry or method
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    device = method.backbone.device
    module = method if entry is None else _Entry(method, entry)
    # Class buffers are built identically on every rank: never re-send them each step.
    params = inspect.signature(DistributedDataParallel).parameters
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(local_rank: int, n: int, port: int, fn: Callable, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(local_rank),
                      LOCAL_RANK=str(local_rank), WORLD_SIZE=str(n), LOCAL_WORLD_SIZE=str(n))
    from upt.errors import UptError

    try:
        fn(*args)
    except UptError as exc:  # one line, like the command line, then a plain non-zero exit
        logging.getLogger("upt").error("upt: error (rank %d): %s", local_rank, exc)
        raise SystemExit(2) from None
    finally:
        if is_distributed():
            dist.destroy_process_group()


def launch(n: int, fn: Callable, *args: Any) -> None:
    """Run ``fn(*args)`` in ``n`` processes on this machine, as torchrun would."""
    import torch.multiprocessing as mp

    from upt.errors import UptError

    try:
        mp.spawn(_worker, args=(n, _free_port(), fn, args), nprocs=n, join=True)
    except mp.ProcessExitedException as exc:
        raise UptError(f"A data-parallel process stopped (exit code {exc.exit_code}); its message is above.") from None
