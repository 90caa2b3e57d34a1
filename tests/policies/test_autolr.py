"""AutoLR controller on a tiny model: rejection, re-run, exact restore, guards."""

from __future__ import annotations

import math

import pytest
import torch

from dml.errors import InfeasibleError
from dml.policies.autolr import AutoLRPolicy, clip_lr
from tests.conftest import autolr_cfg, tiny_trainer


def log_gap(v: list[float], t: list[float]) -> float:
    """Mean |log(v/t)| over units: how far variations are from their targets."""
    return sum(abs(math.log(a / b)) for a, b in zip(v, t)) / len(v)


def test_rejected_trial_reruns_closer_to_targets(tmp_path):
    # threshold above 1 rejects every trial, so the second trial runs with Eq. 16 LRs
    policy = AutoLRPolicy(autolr_cfg(threshold=1.01, max_trials=2), 0.05)
    trainer = tiny_trainer(policy, tmp_path)
    with pytest.warns(UserWarning, match="max_trials"):
        trainer.fit()
    first, second = policy.trials_log[:2]
    assert not first["accepted"] and second["trial"] == 1
    targets = second["target"]
    assert targets is not None and len(targets) == 4
    assert second["lr"] != first["lr"]
    gap_first = log_gap(first["variation"], targets)
    gap_second = log_gap(second["variation"], targets)
    assert gap_second < 0.5 * gap_first, (gap_first, gap_second)


def test_restore_after_rejection_is_bit_exact(tmp_path):
    policy = AutoLRPolicy(autolr_cfg(threshold=1.01, max_trials=2), 0.05)
    trainer = tiny_trainer(policy, tmp_path)
    starts = []
    original = policy.begin_epoch

    def record(epoch):
        original(epoch)
        starts.append({k: v.clone() for k, v in trainer.p.model.state_dict().items()})

    policy.begin_epoch = record
    with pytest.warns(UserWarning):
        trainer.fit()
    assert len(starts) == 2
    for key, value in starts[0].items():
        assert torch.equal(value, starts[1][key]), key


def test_max_trials_keeps_best_trial(tmp_path):
    policy = AutoLRPolicy(autolr_cfg(threshold=1.01, max_trials=3), 0.05)
    trainer = tiny_trainer(policy, tmp_path)
    kept = {}
    original = policy._remember_if_best

    def spy(score, v):
        original(score, v)
        kept[policy.progress.best["trial"]] = policy.progress.best["token"]["model"]

    policy._remember_if_best = spy
    with pytest.warns(UserWarning, match="max_trials=3"):
        trainer.fit()
    trials = policy.trials_log
    assert len(trials) == 3 and not any(t["accepted"] for t in trials)
    best = max(range(3), key=lambda i: trials[i]["score"])
    record = policy.epochs_log[0]
    assert record["capped"] and record["accepted_trial"] == best
    assert record["score"] == trials[best]["score"]
    weights = trainer.p.model.state_dict()
    assert all(torch.equal(weights[k], kept[best][k]) for k in weights)


def test_infeasible_bounds_stop_when_first_trial_is_rejected(tmp_path, capsys):
    """Catches an infeasible alpha/beta going unnoticed once targets are needed: threshold
    1.01 rejects epoch 0's first trial, so initial_targets must raise before any re-run
    (one trial logged, no 're-run' echoed)."""
    policy = AutoLRPolicy(autolr_cfg(alpha=50.0, beta=0.01, threshold=1.01), 0.05)
    trainer = tiny_trainer(policy, tmp_path)
    with pytest.raises(InfeasibleError, match=r"lower .* >= upper"):
        trainer.fit()
    assert len(policy.trials_log) == 1
    assert "re-run" not in capsys.readouterr().out


def test_infeasible_bounds_are_harmless_when_first_trial_is_accepted(tmp_path):
    """Catches the old eager check (InfeasibleError right after epoch 0's first trial even
    when it is accepted): with threshold 0 every trial is accepted, alpha/beta are never
    used, and a 3-epoch run completes with one trial per epoch and no targets."""
    policy = AutoLRPolicy(autolr_cfg(alpha=50.0, beta=0.01, threshold=0.0), 0.05)
    trainer = tiny_trainer(policy, tmp_path, epochs=3)
    trainer.fit()
    assert [r["trials"] for r in policy.epochs_log] == [1, 1, 1]
    assert [r["target"] for r in policy.epochs_log] == [None, None, None]
    assert policy.lrs == [0.05] * 4


def test_zero_variation_unit_is_left_out_and_keeps_lr(tmp_path):
    policy = AutoLRPolicy(autolr_cfg(threshold=1.01, max_trials=2), 0.05)
    trainer = tiny_trainer(policy, tmp_path)
    for p in trainer.p.model.backbone.units[1].parameters():
        p.requires_grad_(False)  # frozen: its weights never move
    with pytest.warns(UserWarning):
        trainer.fit()
    first, second = policy.trials_log[:2]
    assert first["variation"][1] == 0.0
    assert second["lr"][1] == first["lr"][1] == 0.05
    assert second["target"][1] is None
    assert all(second["lr"][k] != 0.05 for k in (0, 2, 3))


def test_accepted_trial_moves_on_and_threshold_decays(tmp_path):
    policy = AutoLRPolicy(autolr_cfg(threshold=0.0), 0.05)
    trainer = tiny_trainer(policy, tmp_path, epochs=3)
    trainer.fit()
    assert [r["trials"] for r in policy.epochs_log] == [1, 1, 1]
    assert policy.epochs_log[0]["threshold"] == 0.0
    policy2 = AutoLRPolicy(
        autolr_cfg(
            threshold=0.9,
            threshold_decay=0.5,
            threshold_floor=0.3,
            max_trials=1,
        ),
        0.05,
    )
    trainer2 = tiny_trainer(policy2, tmp_path, epochs=4)
    with pytest.warns(UserWarning):
        trainer2.fit()
    # 0.9 -> 0.45 -> 0.225 (decays while above the floor 0.3) -> stays
    assert [r["threshold"] for r in policy2.epochs_log] == pytest.approx([0.9, 0.45, 0.225, 0.225])


def test_stem_and_head_lrs_follow_rules(tmp_path):
    policy = AutoLRPolicy(
        autolr_cfg(
            threshold=0.0,
            stem_factor=0.5,
            head_lr=0.02,
            drop_epoch=1,
            drop_factor=0.1,
        ),
        0.05,
    )
    trainer = tiny_trainer(policy, tmp_path, epochs=2)
    trainer.fit()
    lrs = policy.current_lrs()
    assert lrs["unit1"] == pytest.approx(0.005)  # dropped at epoch 1
    assert lrs["stem"] == pytest.approx(0.5 * lrs["unit1"])
    assert lrs["head"] == pytest.approx(0.002)
    assert lrs["loss"] == pytest.approx(0.002)


def test_clip_lr_bounds_and_non_finite():
    assert clip_lr(-1.0, 0.1, 1e-6, 1.0) == 1e-6
    assert clip_lr(5.0, 0.1, 1e-6, 1.0) == 1.0
    assert clip_lr(float("nan"), 0.1, 1e-6, 1.0) == 0.1
    assert clip_lr(float("inf"), 0.1, 1e-6, 1.0) == 0.1
    assert clip_lr(0.3, 0.1, 1e-6, 1.0) == 0.3


def test_state_dict_round_trip(tmp_path):
    policy = AutoLRPolicy(autolr_cfg(threshold=0.0), 0.05)
    tiny_trainer(policy, tmp_path, epochs=2).fit()
    other = AutoLRPolicy(autolr_cfg(threshold=0.0), 0.05)
    other.load_state_dict(policy.state_dict())
    assert other.state_dict() == policy.state_dict()
