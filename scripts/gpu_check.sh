#!/usr/bin/env bash
# One short check of the CUDA path (a few minutes): the ResNet-50 recipe's training step
# under bf16 autocast on one GPU, then one DDP job on two GPUs under torchrun when there
# are two or more; each prints images/s and peak memory. Exits 0 with a one-line note
# when no GPU is visible. STEPS=<n> (default 300) sets the timed steps; PYTHON=<interpreter>
# (default python3) the Python that has dml installed, e.g. a virtual environment's.
#   bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-300}"
py="${PYTHON:-python3}"
gpus="$("$py" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')"
if [ "$gpus" -eq 0 ]; then
    echo "gpu_check: no CUDA GPU visible (torch.cuda.is_available() is False); nothing checked"
    exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$py" scripts/gpu_check.py --steps "$steps" --precision bf16
if [ "$gpus" -ge 2 ]; then
    "$py" -m torch.distributed.run --standalone --nproc_per_node=2 scripts/gpu_check.py --steps "$steps" --precision bf16
else
    echo "gpu_check: one GPU; the 2-GPU torchrun check needs two"
fi
