"""The results file: merging records, one row per configuration with the ratios, and the tables.

The JSON holds ``meta`` (the runs' settings and commands), ``results`` (every measurement's full
record, with all step times) and ``rows`` (:func:`pair_rows`); the Markdown beside it (``.md``) is
:func:`markdown` of those rows.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .spec import METHOD_ORDER, PHASES

TIMING_KEYS = ("images_per_s", "step_s_median", "step_s_all", "text_once_s", "timing", "error")
MEMORY_KEYS = ("peak_mem_mib", "peak_mem_mib_lower_bound", "memory", "hwm_reset", "memory_steps", "mem_cap_mib",
               "memory_error")


def merge_record(old: dict | None, new: dict) -> dict:
    """``new`` over ``old`` (same configuration): a timing-only or memory-only run keeps the other half."""
    if old is None:
        return new
    keep = {}
    if "images_per_s" not in new and "error" not in new:
        keep.update({k: old[k] for k in TIMING_KEYS if k in old})
    if "peak_mem_mib" not in new and "memory_error" not in new:
        keep.update({k: old[k] for k in MEMORY_KEYS if k in old})
    return {**new, **keep}


def record_key(r: dict) -> tuple:
    """What identifies a record: (method, classes, phase, style)."""
    return (r["method"], r["n_cls"], r["phase"], r["style"])


def pair_rows(results: list[dict]) -> list[dict]:
    """One row per (method, classes, phase) with ours, reference and the ratios ours / reference."""
    by = {record_key(r): r for r in results}
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    rows, seen = [], set()
    for r in sorted(results, key=lambda r: (order.get(r["method"], 99), r["n_cls"], PHASES.index(r["phase"]))):
        k = (r["method"], r["n_cls"], r["phase"])
        if k in seen:
            continue
        seen.add(k)
        o, ref = by.get((*k, "ours")), by.get((*k, "reference"))
        row = {"method": k[0], "n_cls": k[1], "phase": k[2]}
        for tag, rec in (("ours", o), ("reference", ref)):
            if rec is None:
                continue
            row[f"{tag}_images_per_s"] = rec.get("images_per_s")
            row[f"{tag}_peak_mem_mib"] = rec.get("peak_mem_mib")
            row[f"{tag}_text_tokens"] = rec.get("text_tokens")
            row[f"{tag}_error"] = rec.get("error")
            row[f"{tag}_memory_error"] = rec.get("memory_error")
            if rec.get("components_median_s"):
                row[f"{tag}_components"] = rec["components_median_s"]
            if rec.get("peak_mem_mib_lower_bound") is not None:
                row[f"{tag}_peak_mem_mib_lower_bound"] = rec["peak_mem_mib_lower_bound"]
            row["mode"] = rec.get("mode", row.get("mode"))
            row["batch"] = rec.get("batch", row.get("batch"))
            row["trainable"] = rec.get("trainable", row.get("trainable"))
        if o and ref and o.get("images_per_s") and ref.get("images_per_s"):
            row["speed_ratio"] = o["images_per_s"] / ref["images_per_s"]
            if o.get("timing") == ref.get("timing") == "paired-interleaved" and o["mode"] != "eval":
                # each timed step of ours next to the reference step right after it
                pairs = [r / s for s, r in zip(o["step_s_all"], ref["step_s_all"], strict=True)]
                row["speed_ratio_per_pair"] = pairs
                row["speed_ratio_pair_median"] = statistics.median(pairs)
        if o and ref and o.get("peak_mem_mib") is not None and ref.get("peak_mem_mib"):
            row["memory_ratio"] = o["peak_mem_mib"] / ref["peak_mem_mib"]
        elif o and ref and o.get("peak_mem_mib") is not None and ref.get("peak_mem_mib_lower_bound"):
            row["memory_ratio_upper_bound"] = o["peak_mem_mib"] / ref["peak_mem_mib_lower_bound"]
        rows.append(row)
    return rows


def _fmt(x, spec=".1f", none="–"):
    return none if x is None else format(x, spec)


def markdown(rows: list[dict], meta: dict) -> str:
    """The Markdown table of :func:`pair_rows` (and of the training-step components, where measured)."""
    lines = [f"Device: {meta.get('device_name')}; backbone {meta.get('backbone')}.", ""]
    for run in meta.get("runs", []):
        lines.append(f"- `{run.get('command')}`")
    lines += [
        "",
        "| method | classes | phase | batch | ours img/s | ref img/s | speed × (pairs) | ours peak MiB | ref peak MiB "
        "| mem ours/ref | text tokens ours/ref | trainable |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        phase = r["phase"] if r.get("mode") != "features" else "train (features)"
        ref_mem = _fmt(r.get("reference_peak_mem_mib"), ".0f")
        mem_ratio = _fmt(r.get("memory_ratio"), ".2f")
        if r.get("reference_peak_mem_mib_lower_bound") is not None:
            ref_mem = f"> {r['reference_peak_mem_mib_lower_bound']:.0f} (aborted)"
            mem_ratio = f"< {r['memory_ratio_upper_bound']:.2f}" if r.get("memory_ratio_upper_bound") else "–"
        elif r.get("reference_memory_error"):
            ref_mem = "error"
        ref_ips = _fmt(r.get("reference_images_per_s"), ".2f")
        if r.get("reference_error") and r.get("reference_images_per_s") is None:
            ref_ips = "error"
        speed = _fmt(r.get("speed_ratio"), ".2f")
        if r.get("speed_ratio_pair_median") is not None:
            speed += f" ({r['speed_ratio_pair_median']:.2f})"
        tokens = f"{r.get('ours_text_tokens') or '–'}/{r.get('reference_text_tokens') or '–'}"
        trainable = f"{r['trainable']:,}" if isinstance(r.get("trainable"), int) else "–"
        lines.append(
            f"| {r['method']} | {r['n_cls']} | {phase} | {r.get('batch', '–')} "
            f"| {_fmt(r.get('ours_images_per_s'), '.2f')} | {ref_ips} | {speed} "
            f"| {_fmt(r.get('ours_peak_mem_mib'), '.0f')} | {ref_mem} | {mem_ratio} | {tokens} | {trainable} |"
        )
    comps = [r for r in rows if r.get("ours_components") or r.get("reference_components")]
    if comps:
        lines += ["", "Training-step components (median seconds; image encoder forward alone, class text forward + "
                  "backward):", "", "| method | classes | batch | ours image fwd | ref image fwd | ours text fwd+bwd "
                  "| ref text fwd+bwd |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in comps:
            o, f = r.get("ours_components") or {}, r.get("reference_components") or {}
            lines.append(f"| {r['method']} | {r['n_cls']} | {r.get('batch', '–')} | {_fmt(o.get('image_forward'), '.2f')} "
                         f"| {_fmt(f.get('image_forward'), '.2f')} | {_fmt(o.get('text_fwd_bwd'), '.2f')} "
                         f"| {_fmt(f.get('text_fwd_bwd'), '.2f')} |")
    return "\n".join(lines) + "\n"


def write_results(out: Path, meta: dict, results: list[dict]) -> None:
    """Write the JSON to ``out`` and the Markdown table beside it (``.md``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = pair_rows(results)
    out.write_text(json.dumps({"meta": meta, "results": results, "rows": rows}, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(rows, meta))
