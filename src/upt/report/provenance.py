"""Where a table's numbers come from: backbone, pretrained weights, precision and data folders.

Every table of a report carries one line made by :func:`provenance_line`; what varies inside a
table is named there and shown per row instead (backbones and weights in the method labels,
precision in a ``Precision`` column).
"""

from __future__ import annotations

from collections.abc import Sequence

from upt.report.collect import UNRECORDED, Record, data_root, short_name


def weights_text(pretrained: str | None) -> str:
    return "none (random init)" if pretrained in (None, "None", "") else str(pretrained)


def precisions(records: Sequence[Record]) -> list[str]:
    """The distinct precisions of ``records`` (``not recorded`` for records without one)."""
    return sorted({r.precision or "not recorded" for r in records})


def data_text(records: Sequence[Record], code: str = "`") -> str:
    """Data roots and the datasets read below each: ``/data (dtd, eurosat); /photos (flowers5)``.

    Args:
        code: the quote around each folder (Markdown's backtick; "" for CSV).
    """
    by_root: dict[str, set[str]] = {}
    for r in records:
        for name, folder in ((r.dataset, r.data_dir), (r.eval_dataset, r.eval_data_dir)):
            by_root.setdefault(data_root(name, folder), set()).add(short_name(name))
    parts = [f"{code}{root}{code} ({', '.join(sorted(names))})" if root != UNRECORDED
             else f"{', '.join(sorted(names))}: {UNRECORDED}"
             for root, names in sorted(by_root.items())]
    return "; ".join(parts)


def provenance_line(records: Sequence[Record]) -> str:
    """One Markdown line: backbone, weights, precision and data of the records behind a table."""
    settings = sorted({(r.backbone, str(r.pretrained)) for r in records})
    if len(settings) == 1:
        backbone, pretrained = settings[0]
        model = f"Backbone `{backbone}`, weights `{weights_text(records[0].pretrained)}`"
    else:
        model = "Backbones and weights differ by row (`method [backbone, weights]`), never averaged together"
    found = precisions(records)
    precision = f"precision `{found[0]}`" if len(found) == 1 else "precision per row (Precision column)"
    data = data_text(records)
    if any(", data " in r.label or "[data " in r.label for r in records):
        data += " (one dataset read from several folders: rows say which, `[data ROOT]`)"
    return f"_{model}; {precision}; data: {data}._"


def varies(records: Sequence[Record]) -> bool:
    """Whether the records of one table were run in more than one precision (a Precision column)."""
    return len(precisions(records)) > 1
