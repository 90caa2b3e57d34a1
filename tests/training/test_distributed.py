"""DDP: two gloo ranks on the CPU train exactly as one process on the same global batches."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from pytorch_metric_learning import losses
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dml.data.sampler import EpochBatchSampler
from dml.errors import DmlError
from dml.losses import SoftmaxLoss, build_loss
from dml.models import EmbeddingNet
from dml.policies.autolr import AutoLRPolicy
from dml.training import distributed
from dml.training.distributed import gathered
from dml.training.loop import Joint
from tests.conftest import (
    TINY_VAL_OVERRIDES as TINY,
)
from tests.conftest import (
    autolr_cfg,
    compose_cfg,
    stop_when,
    tiny_backbone,
    trainer_over,
    unbuffered_env,
)

ROOT = Path(__file__).resolve().parents[2]
CLASSES, N = 4, 64


def spawn(worker, tmp_path: Path, *args) -> None:
    """Run worker(rank, world, init_file, *args) on two gloo ranks."""
    init = tmp_path / "init"
    mp.spawn(worker, args=(2, str(init), *args), nprocs=2, join=True)


def _join(rank: int, world: int, init: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)


# -- a whole AutoLR run on two ranks ----------------------------------------------------
def autolr_trainer(out: Path, rank: int = 0, world: int = 1):
    """AutoLR (rerun) over random 8x8 images: frozen BN, softmax loss, linear head, so the
    mean of the ranks' gradients is the global batch's gradient."""
    torch.manual_seed(0)
    model = EmbeddingNet(tiny_backbone(), embedding_dim=8, freeze_bn=True)
    loss = SoftmaxLoss(CLASSES, 8)
    x = torch.randn(N, 3, 8, 8)
    y = torch.arange(N) % CLASSES
    x += y.view(-1, 1, 1, 1).float() * 0.5
    sampler = EpochBatchSampler(y.tolist(), 16, seed=0, rank=rank, world_size=world)
    loader = DataLoader(TensorDataset(x, y), batch_sampler=sampler)
    policy = AutoLRPolicy(autolr_cfg(threshold=0.94, max_trials=3), 0.05)
    return trainer_over(model, loss, loader, sampler, policy, out, epochs=3), policy


def _autolr_worker(rank: int, world: int, init: str, out: str) -> None:
    _join(rank, world, init)
    try:
        trainer, policy = autolr_trainer(Path(out), rank, world)
        trainer.fit()
        state = {"model": trainer.p.model.state_dict(), "trials": policy.trials_log}
        torch.save(state, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_stay_identical_and_decide_as_one_process(tmp_path):
    """Catches ranks that drift apart (unsynchronised gradients or LRs, a trial restored on
    one rank only) and AutoLR decisions that change under DDP: both ranks end bit-identical,
    and every trial's score, verdict, LRs and variations equal a 1-process run's."""
    spawn(_autolr_worker, tmp_path, str(tmp_path))
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    for key, value in r0["model"].items():
        assert torch.equal(value, r1["model"][key]), key
    trainer, policy = autolr_trainer(tmp_path / "single")
    trainer.fit()
    ddp, one = r0["trials"], policy.trials_log
    assert len(ddp) == len(one) and len(one) > 3  # some trials were re-run
    assert [t["accepted"] for t in ddp] == [t["accepted"] for t in one]
    assert False in [t["accepted"] for t in one]
    for a, b in zip(ddp, one):
        assert a["score"] == b["score"]
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-4)
        assert a["variation"] == pytest.approx(b["variation"], rel=1e-3)
    for key, value in trainer.p.model.state_dict().items():
        assert torch.allclose(value.float(), r0["model"][key].float(), atol=1e-5), key


# -- losses over the global batch --------------------------------------------------------
def make_loss(name: str) -> nn.Module:
    torch.manual_seed(1)
    if name == "softmax":
        return SoftmaxLoss(CLASSES, 6)
    if name == "proxy_anchor":
        return losses.ProxyAnchorLoss(num_classes=CLASSES, embedding_size=6)
    cfg = compose_cfg(["loss=triplet", "loss.miner=all"]).loss
    return build_loss(cfg, CLASSES, 6)


def batch() -> tuple[torch.Tensor, torch.Tensor, nn.Linear]:
    torch.manual_seed(2)
    x, y = torch.randn(16, 5), torch.arange(16) % CLASSES
    return x, y, nn.Linear(5, 6)


def gradients(model: nn.Module, loss: nn.Module) -> dict[str, torch.Tensor]:
    """The gradients of the model's and the loss's own parameters, by their own names."""
    named = [*model.named_parameters(prefix="model"), *loss.named_parameters(prefix="loss")]
    return {k: p.grad.clone() for k, p in named if p.grad is not None}


LOSS_NAMES = ["softmax", "proxy_anchor", "triplet"]


def _loss_step(name: str, rank: int, out: Path) -> None:
    x, y, model = batch()
    loss = make_loss(name)
    net = nn.parallel.DistributedDataParallel(Joint(model, distributed.global_batch_loss(loss)))
    part = distributed.shard(len(x))
    net(x[part.start : part.stop], y[part.start : part.stop]).backward()
    torch.save(gradients(model, loss), out / f"{name}{rank}.pt")


def _collectives_worker(rank: int, world: int, init: str, out: str) -> None:
    """Every small two-rank check in one process group (a spawn costs ~4 s here)."""
    _join(rank, world, init)
    try:
        for name in LOSS_NAMES:
            _loss_step(name, rank, Path(out))
        # shards of 7 rows gathered back in dataset order, no padding duplicates
        rows = torch.arange(7.0)
        share = distributed.shard(7)
        (full,) = gathered((rows[share.start : share.stop],))
        torch.save(full, Path(out) / f"gathered{rank}.pt")
        _sync_bn_check(rank, Path(out))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """The folder where both ranks of _collectives_worker saved what they saw."""
    out = tmp_path_factory.mktemp("two_ranks")
    spawn(_collectives_worker, out, str(out))
    return out


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_losses_see_the_global_batch(two_ranks, name):
    """Catches a loss computed on each rank's share only (pairs, triplets and proxies miss
    the other rank's images) and proxies whose gradient DDP would average to 2x the true
    one (PML's wrapper scales the loss by the world size): the gradients of the model and
    of the loss's parameters on two ranks equal one process's on the whole batch."""
    x, y, model = batch()
    loss = make_loss(name)
    net = Joint(model, loss)
    net(x, y).backward()
    expected = gradients(model, loss)
    assert expected  # the model's weight, and the loss's own parameters where it has some
    for rank in (0, 1):
        got = torch.load(two_ranks / f"{name}{rank}.pt")
        assert got.keys() == expected.keys()
        for key, grad in expected.items():
            assert torch.allclose(got[key], grad, rtol=1e-5, atol=1e-7), (key, rank)
        assert torch.load(two_ranks / f"gathered{rank}.pt").tolist() == list(range(7))


def _sync_bn_check(rank: int, out: Path) -> None:
    model = EmbeddingNet(tiny_backbone(), embedding_dim=8)
    params = dict(model.named_parameters())
    synced = distributed.sync_batchnorm(model, torch.device("cuda"))  # as on a GPU rank
    kinds = sorted({type(m).__name__ for m in synced.modules() if "Norm" in type(m).__name__})
    same = all(p is params[k] for k, p in synced.named_parameters())
    try:
        distributed.sync_batchnorm(model, torch.device("cpu"))
        error = ""
    except DmlError as exc:
        error = str(exc)
    torch.save({"kinds": kinds, "same": same, "error": error}, out / f"bn{rank}.pt")


def test_sync_bn_converts_every_batchnorm_on_gpu_ranks_and_refuses_the_cpu(two_ranks):
    """Catches trainer.sync_bn ignored (plain BatchNorm: statistics of each rank's share), a
    conversion that builds new Parameters (the optimizer's groups would miss them), and a
    CPU run dying mid-epoch in SyncBatchNorm's own traceback instead of a one-line error."""
    model = EmbeddingNet(tiny_backbone(), embedding_dim=8)
    assert distributed.sync_batchnorm(model, torch.device("cpu")) is model  # one process
    for rank in (0, 1):
        got = torch.load(two_ranks / f"bn{rank}.pt")
        assert got["kinds"] == ["SyncBatchNorm"] and got["same"]
        assert got["error"].startswith("trainer.sync_bn=true needs GPUs")


# -- train.py under torchrun ------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        "train.py",
        *args,
    ]


def launch(args: list[str]) -> subprocess.CompletedProcess:
    """Run a command from the repository root, capturing its output."""
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=300, env=unbuffered_env()
    )


def test_torchrun_train_py_writes_one_run_and_prints_trials_once(tmp_path):
    """Catches every rank printing (trial lines twice), writing its own results.json or
    run folder, or generating the synthetic data at the same time: a 2-rank AutoLR run
    completes in one folder, each trial line is printed once, and the checkpoint is the
    last epoch's."""
    run, data = tmp_path / "runs" / "one", tmp_path / "data"
    args = [*TINY, "trainer.epochs=2", "lr_policy=autolr", f"data_dir={data}"]
    proc = launch(torchrun(*args, f"hydra.run.dir={run}"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "completed" and len(results["history"]) == 2
    trials = [
        f"[autolr] epoch {t['epoch']} trial {t['trial']}:" for t in results["autolr"]["trials"]
    ]
    assert len(trials) >= 2
    for line in trials:
        assert proc.stdout.count(line) == 1, line
    assert proc.stdout.count("Recall@K (%) on the test classes") == 1
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["one"]
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert checkpoint["epoch"] == 1


def test_a_run_resumes_under_torchrun(tmp_path):
    """Catches a resume that only rank 0 can load, or that restarts from epoch 0 under DDP:
    a 1-process run stopped in epoch 1 continues on two ranks, keeping epoch 0's row."""
    run, data = tmp_path / "run", tmp_path / "data"
    args = [sys.executable, "train.py", *TINY, "trainer.epochs=3", f"data_dir={data}"]
    marker = "[autolr] epoch 1 trial 0"
    rc, out, err = stop_when([*args, f"hydra.run.dir={run}"], marker, signal.SIGINT)
    assert rc == 130, err[-2000:]
    first = json.loads((run / "results.json").read_text())["history"]
    proc = launch(torchrun(f"resume={run}"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("resumed after epoch 0 of 3") == 1
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "completed"
    assert [h["epoch"] for h in results["history"]] == [0, 1, 2]
    assert results["history"][0] == first[0]
