#!/usr/bin/env bash
# GPU checks, then the speed/memory benchmark on one CUDA GPU: every method on ViT-B-16 (random weights, no download) at
# 100 and 1000 classes, ours (bf16 autocast, truncated text, text once per evaluation) against
# reference-style (legacy fp16, 77 tokens, text per test batch), then the feature store over a small
# few-shot grid (benchmarks/grid.py). Meant to finish in under 8 minutes.
#
#   bash benchmarks/gpu.sh OUT_DIR [WHEELS_DIR]
#
# The machine needs torch + torchvision. When `import open_clip` (or another runtime dependency)
# fails, the wheels in WHEELS_DIR (default: $UPT_WHEELS, else ./wheels) are installed offline;
# make them beforehand on a machine with internet, for the GPU machine's Python version:
#
#   pip download --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
#       -d wheels/ open_clip_torch==3.3.0 ftfy wcwidth regex pyyaml safetensors tqdm
#
# (open_clip imports ftfy (needs wcwidth) and regex at run time; huggingface_hub and timm only
# when loading hub weights or timm towers, which this benchmark does not; upt itself needs pyyaml,
# safetensors and tqdm.) upt is installed with `pip install --no-deps -e .`, or put on PYTHONPATH
# when that cannot build offline. Nothing heavy is created: the JSON and Markdown in OUT_DIR, and
# src/upt.egg-info from the editable install.
#
# Dry run of the plumbing on a CPU (UPT_BENCH_EXTRA is appended to the benchmark's arguments):
#   UPT_BENCH_DEVICE=cpu UPT_BENCH_BACKBONE=tiny UPT_CHECK_PRECISIONS="fp32 bf16" UPT_BENCH_SKIP_GRID=1 \
#       UPT_BENCH_SKIP_COMPILE=1 UPT_BENCH_EXTRA="--methods coop --classes 10" bash benchmarks/gpu.sh /tmp/out
set -euo pipefail

OUT_DIR=${1:?usage: bash benchmarks/gpu.sh OUT_DIR [WHEELS_DIR]}
WHEELS=${2:-${UPT_WHEELS:-wheels}}
PY=${PYTHON:-python}
DEVICE=${UPT_BENCH_DEVICE:-cuda}
BACKBONE=${UPT_BENCH_BACKBONE:-ViT-B-16}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
cd "$REPO"

RUNTIME_IMPORTS="import open_clip, ftfy, regex, yaml, safetensors, tqdm"
if ! "$PY" -c "$RUNTIME_IMPORTS" 2>/dev/null; then
    if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
        echo "open_clip or a dependency is missing and $WHEELS holds no wheels; see the header of $0." >&2
        exit 2
    fi
    echo "installing the wheels in $WHEELS (offline)"
    "$PY" -m pip install --quiet --no-index --no-deps "$WHEELS"/*.whl
    "$PY" -c "$RUNTIME_IMPORTS"
fi

if ! "$PY" -c "import upt.methods" 2>/dev/null; then
    if ! "$PY" -m pip install --quiet --no-deps --no-build-isolation -e . 2>/dev/null; then
        echo "pip could not install upt offline; using PYTHONPATH=$REPO/src"
        export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi

"$PY" - <<EOF
import torch
print("torch", torch.__version__, "| device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
assert "$DEVICE" != "cuda" or torch.cuda.is_available(), "no CUDA device visible"
EOF

# Correctness first (benchmarks/gpu_checks.py): short UPT and CoOp runs in bf16, fp16 (grad scaler),
# legacy-fp16 and fp32 on ViT-B-16 must finish with finite losses; with 2+ GPUs, --devices 2 (NCCL)
# must match one process. A drawn toy task is the data (nothing to download).
start=$(date +%s)
[ -d "$OUT_DIR/data/colours" ] || "$PY" -m upt data toy colours --out "$OUT_DIR/data/colours" >/dev/null
CHECK_PRECISIONS=${UPT_CHECK_PRECISIONS:-bf16 fp16 legacy-fp16 fp32}
UPT_CACHE="$OUT_DIR/cache" "$PY" benchmarks/gpu_checks.py --dataset "folder:$OUT_DIR/data/colours" \
    --backbone "$BACKBONE" --device "$DEVICE" --precisions $CHECK_PRECISIONS \
    --out "$OUT_DIR/gpu-$(date +%F)-checks.json" || echo "SOME GPU CHECKS FAILED (see the JSON)" >&2

# --chunk-size 2048: CoCoOp's evaluation encodes B x n_cls text sequences (100 x 1000); ours encodes
# them 2048 at a time, the reference one image's n_cls at a time. Every other step encodes at most
# 1000 sequences, so nothing else is chunked: these rows show speed with truncation alone.
"$PY" benchmarks/speed.py --device "$DEVICE" --precision bf16 --backbone "$BACKBONE" \
    --classes 100 1000 --batch-size 32 --eval-batch-size 100 --steps 5 --warmup 2 --chunk-size 2048 \
    --out "$OUT_DIR/gpu-$(date +%F).json" ${UPT_BENCH_EXTRA:-}
# The same 1000-class training steps of the text-prompt methods with chunked text (250 prompts at a
# time) and gradient checkpointing: the memory-lean setting, against the reference rows above.
"$PY" benchmarks/speed.py --device "$DEVICE" --precision bf16 --backbone "$BACKBONE" \
    --methods coop cocoop maple upt --classes 1000 --phases train --styles ours --batch-size 32 \
    --steps 5 --warmup 2 --chunk-size 250 --checkpointing \
    --out "$OUT_DIR/gpu-$(date +%F)-chunk250-checkpointing.json" ${UPT_BENCH_EXTRA:-}
# The feature store over a few-shot grid (benchmarks/grid.py): three drawn toy tasks (nothing to
# download) x 1, 4, 16 shots x 2 seeds x zero-shot, linear probe, CoOp, CoCoOp, UPT on ViT-B-16,
# with and without the store, interleaved.
if [ -z "${UPT_BENCH_SKIP_GRID:-}" ]; then
    for task in shapes backgrounds colours; do
        [ -d "$OUT_DIR/data/$task" ] || "$PY" -m upt data toy "$task" --out "$OUT_DIR/data/$task" >/dev/null
    done
    UPT_CACHE="$OUT_DIR/cache" "$PY" benchmarks/grid.py --device "$DEVICE" --precision bf16 --backbone "$BACKBONE" \
        --pretrained none --epochs 2 --work "$OUT_DIR/grid" \
        --datasets "folder:$OUT_DIR/data/shapes,folder:$OUT_DIR/data/backgrounds,folder:$OUT_DIR/data/colours" \
        --out "$OUT_DIR/gpu-$(date +%F)-feature-store.json"
    rm -rf "$OUT_DIR/grid" "$OUT_DIR/cache"
fi
# torch.compile of the frozen towers, eager against compiled (benchmarks/compile.py): the GPU half of
# the measurement that decides whether a compile option is worth offering (on 2 CPU cores it is not).
if [ -z "${UPT_BENCH_SKIP_COMPILE:-}" ]; then
    "$PY" benchmarks/compile.py --device "$DEVICE" --precision bf16 --backbone "$BACKBONE" --batch-size 100 \
        --classes 1000 --out "$OUT_DIR/gpu-$(date +%F)-compile.json"
fi
rm -rf "$OUT_DIR/cache"
echo "benchmark wall time: $(( $(date +%s) - start )) s; results in $OUT_DIR"
