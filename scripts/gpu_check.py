"""Images/s and peak memory of the paper recipe's training step on one device (or one DDP job).

    python scripts/gpu_check.py [--steps 300] [--precision bf16] [--device cuda]
    torchrun --standalone --nproc_per_node=2 scripts/gpu_check.py --steps 300

The Trainer as train.py builds it (progress bar, policy, logging), on the ResNet-50 recipe of
experiment=cub200_autolr (pruning 15,16, last stride 1, paper head, softmax, SGD Nesterov,
batch 40) over synthetic 224x224 images kept in RAM; random weights, as speed does not
depend on them. The first --warmup steps (cuDNN autotuning, allocator) are not counted.
scripts/gpu_check.sh runs it on one GPU and, with two or more, under torchrun.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dml.run import bare_trainer
from dml.training import distributed

ROOT = Path(__file__).resolve().parents[1]

# experiment=cub200_autolr's model, loss and optimizer, with the synthetic set in place of CUB
RECIPE = [
    "model=resnet50",
    "pruning=15_16",
    "loss=softmax",
    "optimizer=sgd",
    "lr_policy=constant",
    "model.pretrained=none",
    "model.last_stride=1",
    "model.head=paper",
    "optimizer.lr=1e-3",
    "optimizer.head_lr=1e-2",
    "optimizer.nesterov=true",
    "trainer.batch_size=40",
    "trainer.samples_per_class=0",
    "dataset.image_size=224",
    "dataset.resize_size=256",
    "dataset.generated_size=256",
    "dataset.hflip=true",
    "dataset.cache=ram",
    "logger.tensorboard=false",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps (per rank)")
    parser.add_argument("--warmup", type=int, default=20, help="steps run before timing")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke test")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data", help="synthetic cache")
    parser.add_argument("overrides", nargs="*", help="more train.py overrides")
    return parser.parse_args(argv)


def compose(args: argparse.Namespace):
    """The recipe's config on this device and precision."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import dml.config  # noqa: F401  (registers the config schemas)
    from dml.cli import quote_numeric_choices

    overrides = [
        *RECIPE,
        f"data_dir={args.data_dir}",
        f"trainer.device={args.device}",
        f"trainer.precision={args.precision}",
        f"trainer.channels_last={args.device.startswith('cuda')}",
        *args.overrides,
    ]
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        return hydra_compose("train", overrides=quote_numeric_choices(overrides))


def run_steps(trainer, steps: int) -> float:
    """Seconds for `steps` training steps over as many epochs as they take, with the
    device's queue drained at both ends."""
    sync = torch.cuda.synchronize if trainer.p.device.type == "cuda" else (lambda: None)
    per_epoch = len(trainer.p.sampler)
    sync()
    start = time.perf_counter()
    epoch = 0
    while steps > 0:
        trainer.steps = min(steps, per_epoch)
        trainer.train_epoch(epoch, 0)
        steps -= trainer.steps
        epoch += 1
    sync()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Warm up, time --steps steps, print images/s (all ranks) and peak memory (per rank)."""
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False); nothing checked")
        return 0
    distributed.init_from_env()
    cfg = compose(args)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = bare_trainer(cfg, Path(tmp))
        run_steps(trainer, args.warmup)
        cuda = trainer.p.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(trainer.p.device)
        seconds = run_steps(trainer, args.steps)
        trainer.logger.close()
    images = args.steps * cfg.trainer.batch_size  # batch_size is the global batch
    peaks = distributed.gather_all(
        torch.cuda.max_memory_allocated(trainer.p.device) / 2**20 if cuda else None
    )
    name = torch.cuda.get_device_name(trainer.p.device) if cuda else "cpu"
    if distributed.is_main():
        memory = ", ".join(f"{p:.0f} MiB" for p in peaks) if cuda else "n/a on cpu"
        print(
            f"gpu_check: {distributed.world_size()} x {name}, {args.precision}, "
            f"{cfg.model.arch} at {cfg.dataset.image_size} px, batch {cfg.trainer.batch_size}: "
            f"{args.steps} steps in {seconds:.1f} s = {images / seconds:.0f} images/s; "
            f"peak memory per rank {memory}"
        )
    distributed.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
