"""The Trainer's step on several GPUs under torchrun (scripts/gpu_check.sh, two or more GPUs):

    torchrun --standalone --nproc_per_node=2 -m dml.bench.ddp --steps 200

Every rank trains its share of the global batch of 40 on the recipe of dml.bench.gpu; rank 0
prints the images/s of the whole job and each rank's peak memory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from dml.bench.gpu import _peak_mib, _reset_peak, parse_args, recipe, run_steps
from dml.cli import compose_train
from dml.training import distributed


def main(argv: list[str] | None = None) -> int:
    """Warm up, time --steps steps on every rank, print one line on rank 0."""
    args = parse_args(argv)
    args.device = "auto"  # each rank its own GPU (LOCAL_RANK)
    distributed.init_from_env()
    cfg = compose_train([*recipe(args, "bf16"), "lr_policy=constant", *args.overrides])
    with tempfile.TemporaryDirectory() as tmp:
        from dml.run import bare_trainer

        with bare_trainer(cfg, Path(tmp)) as trainer:
            device = trainer.p.device
            run_steps(trainer, args.warmup)
            _reset_peak(device)
            seconds = run_steps(trainer, args.steps)
    peaks = distributed.gather_all(_peak_mib(device))
    if distributed.is_main():
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        images = args.steps * cfg.trainer.batch_size  # batch_size is the global batch
        print(
            f"gpu_check ddp: {distributed.world_size()} x {name}, bf16, batch "
            f"{cfg.trainer.batch_size}: {images / seconds:.0f} images/s; peak memory per rank "
            + ", ".join(f"{p} MiB" for p in peaks)
        )
    distributed.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
