"""torch.distributed under torchrun: the process group from the environment and rank helpers.

A submitit job of several tasks (Slurm `tasks_per_node` > 1) gets the same environment from
submitit's own description of the job. Outside both (WORLD_SIZE unset or 1) every helper is
the single-process identity, so the trainer calls them unconditionally.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn

from dml.errors import DmlError


def launched() -> bool:
    """Whether torchrun (or another launcher setting WORLD_SIZE > 1) started this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def export_submitit_env() -> None:
    """In a submitit job of several tasks, set the variables torchrun would (RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR, MASTER_PORT) from submitit's job environment."""
    if not os.environ.get("SUBMITIT_EXECUTOR") or "WORLD_SIZE" in os.environ:
        return
    import submitit

    if submitit.JobEnvironment().num_tasks > 1:
        # each task keeps every GPU visible and picks cuda:LOCAL_RANK itself
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def init_from_env() -> None:
    """Join the process group torchrun (or submitit) describes: nccl on GPU, gloo on CPU."""
    export_submitit_env()
    if not launched() or dist.is_initialized():
        return
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")


def active() -> bool:
    """Whether a process group of more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Ranks in the job (1 outside torchrun)."""
    return dist.get_world_size() if active() else 1


def rank() -> int:
    """This process's rank (0 outside torchrun)."""
    return dist.get_rank() if active() else 0


def local_rank() -> int:
    """This process's GPU index on its node."""
    return int(os.environ.get("LOCAL_RANK", "0")) if active() else 0


def is_main() -> bool:
    """Rank 0: the one rank that prints, logs and writes files."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if active():
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. generating a cache), the others after it is done."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def from_main(obj):
    """Rank 0's value of obj on every rank (any picklable object)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean(values: list[float]) -> list[float]:
    """Element-wise mean of values over ranks, in float64."""
    if not active() or not values:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return (t / world_size()).tolist()


def gather_all(obj) -> list:
    """Every rank's obj, in rank order, on every rank."""
    if not active():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def shard(n: int) -> range:
    """This rank's contiguous share of n items (shares differ in size by at most one)."""
    w, r = world_size(), rank()
    return range(r * n // w, (r + 1) * n // w)


def _comm_device() -> torch.device:
    """Where collective tensors live: nccl needs the rank's GPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class ScaledGrad(nn.Module):
    """Divides the gradients of `params` by `factor` before DDP reduces them.

    pytorch-metric-learning's DistributedLossWrapper (efficient=False) multiplies the loss
    over the gathered batch by the world size, so that DDP's average of the embeddings'
    gradients equals one process's; a loss's own parameters (proxies) see the whole batch on
    every rank, so their averaged gradient would be world-size times too large.
    """

    def __init__(self, loss: nn.Module, params: list[nn.Parameter], factor: float) -> None:
        super().__init__()
        self.loss = loss
        for p in params:
            p.register_hook(lambda g, f=factor: g / f)

    def forward(self, *args, **kwargs):
        return self.loss(*args, **kwargs)


def global_batch_loss(loss: nn.Module) -> nn.Module:
    """loss over the global batch under DDP (PML's distributed wrappers); itself otherwise.

    The softmax loss is a per-image mean, so DDP's gradient average over equal shards is
    already the global batch's; pair, triplet and proxy losses need the other ranks'
    embeddings.
    """
    from pytorch_metric_learning.losses import BaseMetricLossFunction
    from pytorch_metric_learning.utils import distributed as pml_dist

    if not active():
        return loss
    if hasattr(loss, "global_batch"):  # a loss that knows its own global form (MinedLoss)
        return loss.global_batch()
    if isinstance(loss, BaseMetricLossFunction):
        wrapped = pml_dist.DistributedLossWrapper(loss)
        params = [p for p in loss.parameters() if p.requires_grad]
        return ScaledGrad(wrapped, params, float(world_size())) if params else wrapped
    return loss


def shutdown() -> None:
    """Leave the process group (at the end of a torchrun job)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """trainer.sync_bn under torchrun: every BatchNorm as a SyncBatchNorm holding the same
    Parameter objects (statistics over the global batch); unchanged in one process."""
    if not active():
        return model
    if device.type == "cpu":
        raise DmlError(
            "trainer.sync_bn=true needs GPUs: SyncBatchNorm does not train on the CPU; "
            "set trainer.sync_bn=false"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def follower_argv(argv: list[str]) -> list[str]:
    """Under torchrun, ranks other than 0 let Hydra write into a throw-away folder: the run
    folder is rank 0's (train.py broadcasts it), so no second timestamped folder appears."""
    if int(os.environ.get("RANK", "0")) == 0 or not launched():
        return argv
    import atexit
    import shutil
    import tempfile

    scratch = tempfile.mkdtemp(prefix=f"dml-rank{os.environ['RANK']}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return [*argv, f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]


def gathered(arrays: tuple) -> tuple:
    """Under torchrun, each array concatenated over the ranks' shards in rank order, which
    is dataset order (shards are contiguous); the arrays themselves in one process."""
    if not active():
        return arrays
    import numpy as np

    parts = gather_all(tuple(_numpy(a) for a in arrays))
    joined = [np.concatenate([part[i] for part in parts]) for i in range(len(arrays))]
    return tuple(
        torch.from_numpy(j) if isinstance(a, torch.Tensor) else j for a, j in zip(arrays, joined)
    )


def _numpy(a):
    import numpy as np

    return a.cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
