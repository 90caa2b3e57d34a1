"""Trainer behaviour: divergence stops cleanly, checkpoints stay intact, snapshots are exact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dml.errors import DivergedError
from dml.policies import build_policy
from dml.training.checkpoint import load_checkpoint
from tests.conftest import compose_cfg, tiny_trainer


class NaNAfter(nn.Module):
    """Wraps a loss and returns NaN from the n-th call on."""

    def __init__(self, loss: nn.Module, n: int) -> None:
        super().__init__()
        self.loss, self.n, self.calls = loss, n, 0

    def forward(self, emb, labels):
        self.calls += 1
        value = self.loss(emb, labels)
        return value * float("nan") if self.calls > self.n else value


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path):
    trainer = tiny_trainer(build_policy(compose_cfg(["lr_policy=constant"])), tmp_path, epochs=3)
    trainer.save = True
    trainer.p.loss = NaNAfter(trainer.p.loss, n=6)  # 4 steps per epoch: call 7 is epoch 1 step 2
    with pytest.raises(DivergedError, match="epoch 1 step 2"):
        trainer.fit()
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 0
    assert set(ckpt) >= {"model", "optimizer", "policy", "sampler", "rng", "loss"}


def test_snapshot_restore_round_trip(tmp_path):
    trainer = tiny_trainer(build_policy(compose_cfg(["lr_policy=constant"])), tmp_path)
    token = trainer.snapshot()
    before = {k: v.clone() for k, v in trainer.p.model.state_dict().items()}
    trainer.fit()
    changed = trainer.p.model.state_dict()
    assert any(not torch.equal(before[k], changed[k]) for k in before)
    trainer.restore(token)
    after = trainer.p.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
