"""Train and evaluate a retrieval model: `python train.py [group=option ...] [key=value ...]`.

`python train.py resume=<run dir>` continues a stopped run in its folder, with its config.
A job that submitit re-queues after pre-emption or a time-out (Slurm sweeps) finds its own
checkpoint in its folder and continues from it the same way.
`torchrun --nproc_per_node=N train.py ...` runs one job on N ranks under DDP; so does a
submitit job of N tasks (`hydra.launcher.tasks_per_node=N`).
"""

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import dml.config  # noqa: F401  (registers the config schemas)
from dml.cli import prepare_argv, run_cli, settle_pruning
from dml.errors import DmlError
from dml.run import objective, run
from dml.training import distributed


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float:
    """Run one job; outside a multirun a failed job exits non-zero.

    Returns the reported epoch's R@1 (val R@1 under eval.selection=val), the value a
    Hydra sweeper such as Optuna maximises; NaN for a job that did not complete.
    """
    hc = HydraConfig.get()
    distributed.init_from_env()  # torchrun: join the process group (gloo on CPU, nccl on GPU)
    if not distributed.is_main():
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (rank 0 alone prints)
    out = Path(distributed.from_main(hc.runtime.output_dir))  # every rank in rank 0's folder
    overrides = list(hc.overrides.task)
    if cfg.resume:
        code = resume(Path(cfg.resume), overrides)
    elif distributed.from_main(requeued(out)):  # rank 0 looks before anyone writes
        code = resume(out, [])  # its config is the checkpoint's; the overrides made it
    else:
        settle_pruning(cfg, overrides)
        code = run(cfg, out)
    distributed.shutdown()
    if code and hc.mode != RunMode.MULTIRUN:
        sys.exit(code)  # a multirun goes on with the other jobs; results.json says what failed
    return objective(out)


def requeued(out: Path) -> bool:
    """A submitit job started again (pre-empted, timed out) whose folder holds its checkpoint."""
    from dml.launch import results_status

    stopped = results_status(out / "results.json") not in (None, "completed")
    checkpoint = (out / "checkpoints" / "last.pt").is_file()
    return bool(os.environ.get("SUBMITIT_EXECUTOR")) and stopped and checkpoint


def resume(run_dir: Path, overrides: list[str]) -> int:
    """Continue run_dir from its last checkpoint; 1 with a one-line error when it cannot be."""
    from dml.training.resume import resume_state

    try:
        cfg, state = resume_state(run_dir, overrides)
    except DmlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return run(cfg, run_dir, state)


if __name__ == "__main__":
    sys.argv = distributed.follower_argv(prepare_argv(sys.argv))
    run_cli(main)
