"""Export a trained run as one file that maps preprocessed images to class probabilities.

``export_run(run, out, "onnx")`` writes ``out`` (an ONNX graph) and ``out.json`` (the sidecar);
``"torchscript"`` writes a traced TorchScript module instead (load it with ``torch.jit.load``).
The model takes a float32 batch ``images`` (N×3×S×S, preprocessed) and returns ``probabilities``
(N×n_cls, softmax over the run's classes). N is free; S is the size the sidecar states.

What the graph holds, for every method whose class text does not depend on the image: the run's
(prompted) image encoder, then one matrix product with the class text features (the linear-probe
weights for a linear probe), computed once at export time and stored as a constant, scaled by the logit scale the method uses, then a softmax. CoCoOp conditions
every class prompt on the image, so its graph also holds CLIP's text encoder and runs it on
N × n_cls prompts per batch, exactly as the method does.

ONNX goes through ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter built
into torch (opset 17): it needs nothing beyond torch, where the default ``dynamo=True`` exporter
needs the separate ``onnxscript`` package. Every exported file is run once on a fixed random batch
and compared with the run itself (onnxruntime for ONNX, ``torch.jit.load`` for TorchScript) before
the sidecar is written; a difference above ``TOLERANCE`` is an error.

The sidecar (``<file>.json``) holds the class names, the preprocessing that the run's evaluation
transform applies (read from the transform itself), the input and output names and shapes, and the
run's provenance (method, backbone, weights, dataset, shots, seed, versions, accuracy).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from upt.engine.checkpoint import atomic_write, check_writable, read_json, write_json
from upt.errors import UptError, unknown_name

log = logging.getLogger(__name__)

Format = Literal["onnx", "torchscript"]
FORMATS = ("onnx", "torchscript")
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript"}
INPUT, OUTPUT = "images", "probabilities"
OPSET = 17
TOLERANCE = 1e-4  # largest probability difference accepted between the exported file and the run
INSTALL_HINT = "pip install 'upt[export]'"


class Probabilities(nn.Module):
    """A run's method as ``images (N, 3, S, S) -> probabilities (N, n_cls)``, for tracing.

    The frozen image tower is registered here (the method holds its backbone as a plain attribute), so
    its weights are named parameters of the traced module; any other tensor the forward reads (the
    class text features, or the text tower CoCoOp runs per image) is traced as a constant, so a file
    holds what its graph uses and nothing more (never the unused token embedding table, say).
    """

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method
        self.visual = method.backbone.model.visual

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, n_cls) of preprocessed images (N, 3, S, S), as Predictor computes them."""
        return self.method(images).float().softmax(-1)


def sidecar_path(model_path: str | Path) -> Path:
    """Where the sidecar of an exported file goes: the file's name with ``.json`` appended."""
    return Path(f"{model_path}.json")


def resolve_format(fmt: str | None, out: Path) -> str:
    """The export format asked for, or the one ``out``'s suffix names when none is."""
    if fmt is None:
        if out.suffix.lower() not in SUFFIXES:
            raise UptError(f"Cannot tell the export format from the name {out.name}; pass --format onnx or "
                           "--format torchscript.")
        return SUFFIXES[out.suffix.lower()]
    if fmt not in FORMATS:
        raise unknown_name("export format", fmt, FORMATS)
    return fmt


def describe_preprocess(transform) -> dict:
    """What an evaluation transform does, as plain values a deployment can repeat without torch.

    Reads the steps of the transform itself (``upt.data.build_transform``'s deterministic
    evaluation pipeline): RGB, resize of the short side, centre crop, scale to 0..1, normalise.
    """
    from torchvision import transforms as T

    from upt.data.images import ToRGB

    steps = list(getattr(transform, "transforms", [transform]))
    kinds = [type(s) for s in steps]
    random = [k.__name__ for k in kinds if k.__name__.startswith("Random")]
    if random:
        raise UptError(f"The run's evaluation transform includes {', '.join(random)}, which is random; an exported "
                       "model needs a deterministic one (set data.eval_transform: center_crop).")
    if kinds != [ToRGB, T.Resize, T.CenterCrop, T.ToTensor, T.Normalize]:
        raise UptError(f"Cannot describe the evaluation transform ({', '.join(k.__name__ for k in kinds)}); an "
                       "export needs RGB, resize, centre crop, to-tensor and normalise.")
    _, resize, crop, _, norm = steps
    size = resize.size if isinstance(resize.size, int) else resize.size[0]
    if (not isinstance(resize.size, int) and len(resize.size) != 1) or resize.max_size is not None:
        raise UptError(f"The evaluation transform resizes to {resize.size} (max {resize.max_size}); an export "
                       "describes a resize of the short side only.")
    if crop.size[0] != crop.size[1]:
        raise UptError(f"The evaluation transform crops {crop.size[0]}×{crop.size[1]}; only square crops export.")
    return {
        "mode": "RGB",
        "resize": int(size),
        "interpolation": resize.interpolation.value,
        "crop": int(crop.size[0]),
        "mean": [float(m) for m in norm.mean],
        "std": [float(s) for s in norm.std],
        "steps": ("convert to RGB; resize the short side to `resize` px (long side floor(long * resize / short)) "
                  "with `interpolation`, as Pillow resizes; centre crop `crop`×`crop` (offsets "
                  "round((side - crop) / 2)); divide by 255; subtract `mean` and divide by `std` per channel; "
                  "channels first (3×crop×crop), batched as N×3×crop×crop float32"),
    }


def provenance(run: str | Path, run_dir: Path, meta: dict, fmt: str) -> dict:
    """Where an exported model comes from: the run (as given, and its folder ``run_dir``), its method,
    backbone, data, versions and accuracy."""
    import upt

    results_path = run_dir / "results.json"
    results = read_json(results_path) if results_path.exists() else {}
    backbone = meta["backbone"]
    return {
        "run": str(run),
        "method": meta["method"],
        "method_config": meta["method_config"],
        "backbone": backbone["name"],
        "pretrained": backbone.get("pretrained"),
        "quick_gelu": backbone.get("quick_gelu"),
        "template": meta["template"],
        "dataset": meta.get("dataset"),
        "classes": meta.get("classes"),
        "shots": meta.get("shots"),
        "seed": meta.get("seed"),
        "upt_version": meta.get("versions", {}).get("upt"),
        "accuracy": results.get("accuracy"),
        "macro_f1": results.get("macro_f1"),
        "n_images": results.get("n_images"),
        "eval_dataset": results.get("eval_dataset"),
        "split": results.get("split"),
        "exported_with": {"upt": upt.__version__, "torch": torch.__version__, "format": fmt,
                          "exporter": f"torch.onnx.export(dynamo=False), opset {OPSET}" if fmt == "onnx"
                          else "torch.jit.trace"},
    }


def classifier_kind(method: nn.Module) -> str:
    """How the exported graph classifies: a constant matrix, or the image-conditioned text encoder."""
    if method.image_dependent_text:
        return "image-conditioned text encoder (N × n_cls prompts per batch)"
    return "constant text features" if method.uses_text else "constant linear-probe weights"


def require_onnxruntime():
    """The onnxruntime module, or the UptError that says how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise UptError(f"ONNX export needs onnxruntime to check the exported file; {INSTALL_HINT}.") from exc
    return onnxruntime


@contextlib.contextmanager
def _exportable_attention() -> Iterator[None]:
    """Within this context ``nn.MultiheadAttention`` takes its composite path, which the ONNX exporter can
    translate (its fused inference kernel has no ONNX form); the maths is the same."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None:
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


def _write_onnx(model: Probabilities, example: torch.Tensor, path: Path) -> None:
    kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with _exportable_attention(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        torch.onnx.export(model, (example,), str(path), input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "N"}, OUTPUT: {0: "N"}}, opset_version=OPSET, **kwargs)


def _write_torchscript(model: Probabilities, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice
        traced = torch.jit.trace(model, (example,), check_trace=False)
    traced.save(str(path))


def run_exported(path: Path, fmt: str, images: np.ndarray) -> np.ndarray:
    """Probabilities from an exported file (onnxruntime for ONNX, ``torch.jit.load`` for TorchScript)."""
    if fmt == "onnx":
        session = require_onnxruntime().InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run([OUTPUT], {INPUT: images})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(torch.from_numpy(images)).numpy()


def export_run(run: str | Path, out: str | Path, fmt: str | None = None) -> dict:
    """Export a run folder (or ``hf-hub:user/name``) to ``out`` and write its sidecar ``out.json``.

    Args:
        run: the run folder, or a ``hf-hub:`` run.
        out: the file to write.
        fmt: ``onnx`` or ``torchscript``; None: from ``out``'s suffix (``.onnx``, ``.pt``).

    Returns:
        The sidecar's content, with ``check``: the largest probability difference between the exported
        file and the run on a fixed random batch.
    """
    from upt.hub import resolve_run
    from upt.predict import Predictor

    out = Path(out)
    fmt = resolve_format(fmt, out)
    if fmt == "onnx":
        require_onnxruntime()
    if out.is_dir():
        raise UptError(f"--out {out} is a folder; give the name of the file to write.")
    check_writable(out, "choose another --out.")
    run_dir = resolve_run(run)
    predictor = Predictor(run_dir, device="cpu")
    preprocess = describe_preprocess(predictor.transform)
    method, s = predictor.method, preprocess["crop"]
    generator = torch.Generator().manual_seed(0)
    example, probe = (torch.randn(n, 3, s, s, generator=generator) for n in (2, 3))  # another N checks the free axis
    model = Probabilities(method).eval()
    with method.cached_text(), torch.no_grad():
        atomic_write(out, lambda p: (_write_onnx if fmt == "onnx" else _write_torchscript)(model, example, p))
        expected = model(probe).numpy()
    got = run_exported(out, fmt, probe.numpy())
    gap = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not gap <= TOLERANCE:
        out.unlink(missing_ok=True)
        raise UptError(f"The exported {fmt} file disagrees with the run (largest probability difference {gap:.3g}, "
                       f"shape {got.shape} for {expected.shape}); nothing was written.")
    sidecar = {
        "format": fmt,
        "model": out.name,
        "input": {"name": INPUT, "shape": ["N", 3, s, s], "dtype": "float32"},
        "output": {"name": OUTPUT, "shape": ["N", len(predictor.classnames)], "dtype": "float32"},
        "classifier": classifier_kind(method),
        "classnames": list(predictor.classnames),
        "preprocess": preprocess,
        "provenance": provenance(run, run_dir, predictor.meta, fmt),
    }
    write_json(sidecar_path(out), sidecar)
    log.debug("exported %s to %s (check %.3g)", run, out, gap)
    return {**sidecar, "check": gap}
