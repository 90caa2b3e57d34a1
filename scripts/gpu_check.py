"""How fast dml trains and evaluates on a GPU: model-only and Trainer images/s in bf16 and fp32,
peak memory, exit times, GPU search, JPEG decoding and the paper's CUB recipe end to end.

    python scripts/gpu_check.py --json gpu.json [--steps 200] [--sections ...]
    python scripts/gpu_check.py --device cpu --tiny ...   # the check's own code path, on a CPU

Exits 0 with a one-line note when no GPU is visible. The sections and what they measure are
described in dml.bench.gpu; scripts/gpu_check.sh runs this and, with two or more GPUs, a
two-rank DDP step under torchrun.
"""

from dml.bench.gpu import main

if __name__ == "__main__":
    raise SystemExit(main())
