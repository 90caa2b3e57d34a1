"""Trainer behaviour: divergence stops cleanly, checkpoints stay intact, snapshots are exact."""

from __future__ import annotations

import math

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
    """Bug: a NaN loss training on, or ending the run with a checkpoint of NaN weights."""
    trainer = tiny_trainer(build_policy(compose_cfg(["lr_policy=constant"])), tmp_path, epochs=3)
    trainer.save = True
    trainer.p.loss = NaNAfter(trainer.p.loss, n=6)  # 4 steps per epoch: call 7 is epoch 1 step 2
    # log_every 10: epoch 1 (global steps 4-7) has no log step, so the trial's end catches it
    with pytest.raises(DivergedError, match="at epoch 1 by step 3;"):
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


def _backbone_state(trainer) -> dict:
    return {k: v.clone() for k, v in trainer.p.model.backbone.state_dict().items()}


def test_warmup_trains_only_head_and_loss_then_everything(tmp_path):
    """Catches warm-up epochs that still move the backbone, or a backbone left frozen after."""
    trainer = tiny_trainer(build_policy(compose_cfg(["lr_policy=constant"])), tmp_path, epochs=1)
    trainer.warmup_epochs = 2
    trainer.epochs = 2
    start = _backbone_state(trainer)
    head = trainer.p.model.head.weight.clone()
    trainer.fit()
    after_warmup = trainer.p.model.backbone.state_dict()
    weights = [k for k in start if k.endswith("weight") and "bn" not in k]
    assert all(torch.equal(start[k], after_warmup[k]) for k in weights)
    assert not torch.equal(head, trainer.p.model.head.weight)
    trainer.epochs = 3
    trainer.fit(start_epoch=2)
    moved = trainer.p.model.backbone.state_dict()
    assert all(not torch.equal(start[k], moved[k]) for k in weights)


def test_warmup_keeps_frozen_groups_frozen(tmp_path):
    """Catches the end of warm-up unfreezing a group that trainer.freeze had fixed."""
    trainer = tiny_trainer(build_policy(compose_cfg(["lr_policy=constant"])), tmp_path, epochs=3)
    trainer.warmup_epochs = 1
    for param in trainer.p.model.backbone.units[0].parameters():
        param.requires_grad_(False)
    unit = trainer.p.model.backbone.units[0]
    unit1 = {k: v.clone() for k, v in unit.named_parameters()}
    trainer.fit()
    assert all(torch.equal(unit1[k], v) for k, v in unit.named_parameters())
    assert not any(v.requires_grad for v in unit.parameters())


def test_history_records_each_groups_lr_at_epoch_end(tmp_path):
    """Catches history rows without LRs, or LRs read before the schedule moved them."""
    cfg = compose_cfg(["lr_policy=step", "lr_policy.drop_epoch=1", "lr_policy.gamma=0.1"])
    cfg.lr_policy.l_max = 0.05  # tiny_trainer's backbone LR
    trainer = tiny_trainer(build_policy(cfg), tmp_path, epochs=2)
    history = trainer.fit()
    # head 0.05 too (tiny_trainer); after the drop at epoch 1 every group is at 0.005
    assert history[0]["lr"] == pytest.approx({n: 0.05 for n in history[0]["lr"]})
    assert history[1]["lr"] == pytest.approx({n: 0.005 for n in history[1]["lr"]})
    assert set(history[0]["lr"]) == {"stem", "unit1", "unit2", "unit3", "unit4", "head", "loss"}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_epoch_weights_hold_the_first_trial_and_each_kept_epoch(tmp_path):
    """Bug: first_trial.pt written after the policy restored the snapshot (it would hold the
    pretrained weights, or the re-run's), or epoch_<E>.pt holding a rejected trial's weights.
    AutoLR with threshold 1.01 rejects trial 0 and keeps trial 1 of a 2-trial cap."""
    from dml.policies.autolr import AutoLRPolicy
    from tests.conftest import autolr_cfg

    policy = AutoLRPolicy(autolr_cfg(threshold=1.01, max_trials=2), 0.05)
    trainer = tiny_trainer(policy, tmp_path, epochs=2)
    trainer.save_weights = True
    start = {k: v.clone() for k, v in trainer.p.model.state_dict().items()}
    first: dict = {}
    original = trainer.train_epoch

    def remember(epoch, trial):
        loss = original(epoch, trial)
        if epoch == 0 and trial == 0:
            first.update({k: v.clone() for k, v in trainer.p.model.state_dict().items()})
        return loss

    trainer.train_epoch = remember
    with pytest.warns(UserWarning, match="max_trials=2"):
        trainer.fit()
    folder = tmp_path / "checkpoints" / "weights"
    assert sorted(p.name for p in folder.iterdir()) == [
        "epoch_0.pt",
        "epoch_1.pt",
        "first_trial.pt",
    ]
    saved_first = load_checkpoint(folder / "first_trial.pt")
    assert _same(saved_first["model"], first) and not _same(saved_first["model"], start)
    last = load_checkpoint(folder / "epoch_1.pt")
    assert _same(last["model"], trainer.p.model.state_dict())
    assert _same(last["loss"], trainer.p.loss.state_dict())
    # the kept trial of epoch 0 is the better-scoring one; either way epoch 0 moved on from
    # the start, and epoch 1 trained further
    epoch0 = load_checkpoint(folder / "epoch_0.pt")["model"]
    assert not _same(epoch0, start) and not _same(epoch0, last["model"])


def test_no_epoch_weights_unless_asked(tmp_path):
    """Bug: the (large) per-epoch weight files written by every run."""
    trainer = tiny_trainer(build_policy(compose_cfg(["lr_policy=constant"])), tmp_path)
    trainer.fit()
    assert not (tmp_path / "checkpoints" / "weights").exists()


def _constant_trainer(tmp_path, n: int = 64, log_every: int = 10):
    trainer = tiny_trainer(build_policy(compose_cfg(["lr_policy=constant"])), tmp_path, n=n)
    trainer.log_every = log_every
    return trainer


def test_losses_are_read_from_the_device_only_on_log_steps(tmp_path, monkeypatch):
    """Bug: loss.item() every step (a host sync per step that stalls the GPU queue); only log
    steps and the trial's end may read a value back."""
    trainer = _constant_trainer(tmp_path, n=160, log_every=3)  # 10 steps per trial
    calls = []
    real_item = torch.Tensor.item

    def counted(tensor):
        # float values only: the DataLoader reads its int64 worker seed from a CPU generator
        if tensor.is_floating_point():
            calls.append(tuple(tensor.shape))
        return real_item(tensor)

    monkeypatch.setattr(torch.Tensor, "item", counted)
    for trial in range(2):  # global steps 0-9 then 10-19: log steps 0,3,6,9 and 12,15,18
        calls.clear()
        loss = trainer.train_epoch(0, trial)
        assert math.isfinite(loss)
        assert len(calls) <= math.ceil(trainer.steps / trainer.log_every) + 1
    assert len(calls) == 3 + 1  # the second trial: 3 log steps and the mean


class Recorded(nn.Module):
    """Wraps a loss and keeps each step's value (read after the step, as the old loop did)."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss, self.values = loss, []

    def forward(self, emb, labels):
        value = self.loss(emb, labels)
        self.values.append(value.detach().clone())
        return value


def test_trial_loss_is_the_mean_of_the_steps_done(tmp_path):
    """Bug: the device-side running sum changing the reported loss (float32 rounding of the
    sum, a step counted twice or not at all, the sum not reset between trials)."""
    trainer = _constant_trainer(tmp_path)
    trainer.p.loss = Recorded(trainer.p.loss)
    first = trainer.train_epoch(0, 0)
    values = [v.item() for v in trainer.p.loss.values]
    assert len(values) == 4 and first == sum(values) / 4  # the Python-float sum, exactly
    trainer.p.loss.values.clear()
    second = trainer.train_epoch(0, 1)
    assert second == sum(v.item() for v in trainer.p.loss.values) / 4 and second != first


def test_an_early_stopped_trial_averages_only_its_steps(tmp_path, monkeypatch):
    """Bug: the mean divided by the trial's planned steps, not those done, when the policy
    ends it early (AutoLR's probe cut)."""
    trainer = _constant_trainer(tmp_path)
    monkeypatch.setattr(trainer.p.policy, "continue_trial", lambda epoch, done: done < 2)
    trainer.p.loss = Recorded(trainer.p.loss)
    loss = trainer.train_epoch(0, 0)
    values = [v.item() for v in trainer.p.loss.values]
    assert len(values) == 2 and loss == sum(values) / 2


@pytest.mark.parametrize(("log_every", "step"), [(1, 1), (100, 3)])
def test_nan_between_log_steps_is_caught_by_the_trials_end(tmp_path, log_every, step):
    """Bug: a NaN at a step that is not a log step going unnoticed (the trial's mean returned
    as NaN to the policy, or a checkpoint of NaN weights). A log step catches it at once."""
    trainer = _constant_trainer(tmp_path, log_every=log_every)
    trainer.p.loss = NaNAfter(trainer.p.loss, n=1)  # NaN from step 1 of 4
    with pytest.raises(DivergedError) as err:
        trainer.train_epoch(0, 0)
    assert str(err.value) == (
        f"loss became nan at epoch 0 by step {step}; lower the learning rate "
        "(checkpoints already saved are intact)"
    )


def test_timing_records_each_epochs_training_and_evaluation_seconds(tmp_path):
    """Bug: the per-epoch times in results.json ("timing") swapped, summed over the run, or
    taken around one trial only; the GPU check projects the paper's tables from them."""
    import time

    trainer = tiny_trainer(build_policy(compose_cfg(["lr_policy=constant"])), tmp_path, epochs=2)
    trainer.evaluate = lambda epoch: time.sleep(0.2) or {}
    start = time.perf_counter()
    trainer.fit()
    total = time.perf_counter() - start
    assert [t["epoch"] for t in trainer.timing] == [0, 1]
    assert all(0.2 <= t["eval_s"] < 0.35 for t in trainer.timing)
    spent = sum(t["train_s"] + t["eval_s"] for t in trainer.timing)
    assert min(t["train_s"] for t in trainer.timing) > 0 and spent <= total
    assert spent > 0.9 * total  # nothing of the epoch's work left out


@pytest.mark.parametrize("reset", [True, False])
def test_optimizer_reset_momentum_clears_the_buffers_exactly_at_epoch_starts(tmp_path, reset):
    """Bug: optimizer.reset_momentum clearing the momentum buffers mid-epoch (every step, or
    never), or a single-LR run losing its momentum at epoch starts without the switch."""
    trainer = tiny_trainer(
        build_policy(compose_cfg(["lr_policy=constant"])),
        tmp_path,
        epochs=3,
        reset_momentum=reset,
    )
    optimizer = trainer.p.optimizer
    real_step, buffers = optimizer.step, []

    def spy(*args, **kwargs):
        buffers.append(sum("momentum_buffer" in s for s in optimizer.state.values()))
        return real_step(*args, **kwargs)

    optimizer.step = spy
    trainer.fit()
    params = sum(1 for g in optimizer.param_groups for p in g["params"] if p.requires_grad)
    per_epoch = len(trainer.p.sampler)  # 64 images in batches of 16: 4 steps
    assert len(buffers) == 3 * per_epoch and per_epoch == 4
    fresh = [0] + [params] * (per_epoch - 1)  # the first step of an epoch starts from none
    assert buffers == (fresh * 3 if reset else fresh + [params] * (2 * per_epoch))
