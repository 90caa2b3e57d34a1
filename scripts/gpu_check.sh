#!/usr/bin/env bash
# The GPU check (a few minutes on an H200): scripts/gpu_check.py's sections (model-only and
# Trainer images/s in bf16 and fp32, peak memory, exit times, GPU search, JPEG decoding, the
# CUB recipe end to end), then, with two or more GPUs, a two-rank DDP Trainer step under
# torchrun. Exits 0 with a one-line note when no GPU is visible.
#   bash scripts/gpu_check.sh [--json gpu.json] [more gpu_check.py options]
# PYTHON=<interpreter> (default python3): the Python that has dml installed, e.g. a virtual
# environment's; STEPS=<n> (default 200): timed steps per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
gpus="$("$py" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')"
if [ "$gpus" -eq 0 ]; then
    echo "gpu_check: no CUDA GPU visible (torch.cuda.is_available() is False); nothing checked"
    exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$py" scripts/gpu_check.py --steps "${STEPS:-200}" "$@"
if [ "$gpus" -ge 2 ]; then
    "$py" -m torch.distributed.run --standalone --nproc_per_node=2 -m dml.bench.ddp \
        --steps "${STEPS:-200}"
else
    echo "gpu_check: one GPU; the 2-GPU torchrun check needs two"
fi
