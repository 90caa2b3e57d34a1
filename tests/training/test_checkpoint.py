"""Checkpoints hold the values of the run, and a run continued from one ends as if never stopped."""

from __future__ import annotations

import pytest
import torch

from dml.policies.autolr import AutoLRPolicy
from dml.training.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import autolr_cfg, tiny_trainer

R1 = [0.30, 0.50, 0.40]  # a stand-in evaluation: epoch 1 is the best


def trainer_in(folder, stop_at: int | None = None):
    """A tiny AutoLR trainer (re-runs happen at threshold 0.94) saving checkpoints in folder."""
    policy = AutoLRPolicy(autolr_cfg(threshold=0.94, max_trials=3), 0.05)
    trainer = tiny_trainer(policy, folder, epochs=3)
    trainer.save = True

    def evaluate(epoch):
        if epoch == stop_at:
            raise KeyboardInterrupt  # as SIGINT during that epoch's evaluation
        return {"R@1": R1[epoch]}

    trainer.evaluate = evaluate
    return trainer


def weights(trainer) -> dict:
    return {k: v.clone() for k, v in trainer.p.model.state_dict().items()}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_checkpoint_stores_the_runs_values(tmp_path):
    """Catches a checkpoint that saves stale weights, a policy or sampler state other than
    the live one, a history or step count cut short, or a best.pt that is not the best epoch."""
    trainer = trainer_in(tmp_path)
    history = trainer.fit()
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert last["epoch"] == 2
    live = weights(trainer)
    assert all(torch.equal(last["model"][k], live[k]) for k in live)
    assert last["policy"] == trainer.p.policy.state_dict()
    assert last["policy"]["threshold"] == pytest.approx(0.94 * 0.99 * 0.99)
    assert last["sampler"] == {"seed": 0, "epoch": 2}
    assert last["history"] == history and [h["R@1"] for h in history] == R1
    steps = 4 * sum(h["trials"] for h in history)  # 64 images / batch 16 = 4 steps per trial
    assert last["global_step"] == steps
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == 1 and last["best"] == {"epoch": 1, "score": 0.5}
    assert len(best["history"]) == 2


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_continuing_from_a_checkpoint_file_matches_the_uninterrupted_run(tmp_path):
    """Catches policy state (AutoLR LRs, threshold, logs), sampler state, history or RNG lost
    between a checkpoint file and a fresh trainer: the continued run must end bit-equal."""
    whole = trainer_in(tmp_path / "whole")
    whole.fit()
    stopped = trainer_in(tmp_path / "stopped", stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()
    state = load_checkpoint(tmp_path / "stopped" / "checkpoints" / "last.pt")
    assert state["epoch"] == 1
    fresh = trainer_in(tmp_path / "stopped")  # built anew: its own init and RNG draws
    start = fresh.load_state_dict(state)
    assert start == 2
    fresh.fit(start)
    assert fresh.history == whole.history
    assert fresh.p.policy.state_dict() == whole.p.policy.state_dict()
    assert fresh.p.sampler.state_dict() == whole.p.sampler.state_dict()
    assert fresh.global_step == whole.global_step
    ours, theirs = weights(fresh), weights(whole)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_kill_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """Catches writing a checkpoint in place: a save that dies half-way must leave the last
    complete file readable, with its own values."""
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 0, "w": torch.ones(3)})

    def dies(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 1, "w": torch.zeros(3)})
    monkeypatch.undo()
    kept = load_checkpoint(path)
    assert kept["epoch"] == 0 and torch.equal(kept["w"], torch.ones(3))
