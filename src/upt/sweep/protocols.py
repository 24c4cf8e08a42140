"""What each evaluation protocol runs for one grid cell: the training run and the evaluations after it.

The training side of a protocol is a run-config preset (``configs/protocols/<name>.yaml``, usable by
``upt train --config protocols/<name>`` too); this module adds the sweep side: which datasets a
protocol trains on by default, which it evaluates on afterwards, and with which classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from upt.errors import unknown_name

BENCHMARK = ("imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
             "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101")
"""The 11 datasets of the CoOp benchmark, in the order of the papers' tables."""
DG_TARGETS = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")
SHOTS = (1, 2, 4, 8, 16)
SEEDS = (1, 2, 3)


@dataclass(frozen=True)
class Protocol:
    """The sweep side of an evaluation protocol.

    Attributes:
        name: the protocol label written into every result (``fewshot``, ``base2new``, ``dg``,
            ``cross-dataset``).
        datasets: training datasets when a grid names none.
        shots: shot counts when a grid names none.
        classes: classes the training run sees (``all`` or ``base``).
        eval_classes: for base2new, the class half evaluated after training (``new``).
        targets: datasets evaluated after training (domain generalisation, cross-dataset); an
            empty tuple means "the other benchmark datasets".
        transfer: whether the protocol evaluates on other datasets at all.
    """

    name: str
    datasets: tuple[str, ...]
    shots: tuple[int, ...]
    classes: str = "all"
    eval_classes: str | None = None
    targets: tuple[str, ...] = ()
    transfer: bool = False

    def default_targets(self, source: str) -> list[str]:
        """Evaluation datasets of a transfer protocol trained on ``source``."""
        if not self.transfer:
            return []
        pool = self.targets or BENCHMARK
        return [d for d in pool if d != source]


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("fewshot", BENCHMARK, SHOTS),
    Protocol("base2new", BENCHMARK, (16,), classes="base", eval_classes="new"),
    Protocol("dg", ("imagenet",), (16,), targets=DG_TARGETS, transfer=True),
    Protocol("cross-dataset", ("imagenet",), (16,), transfer=True),
)}


def get_protocol(name: str) -> Protocol:
    """The protocol named ``name``; an unknown name raises with the closest known one."""
    if name not in PROTOCOLS:
        raise unknown_name("protocol", name, PROTOCOLS)
    return PROTOCOLS[name]
