"""AutoLR controller arithmetic: threshold decay, LR drop, stem and head LRs (spec section 7).

The policy is driven through its hooks with a fake context and no training: each trial's
weight variation is scripted through the context's ``sync`` hook (which the controller
applies to every measurement), so the tests run in milliseconds and every number is known.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from dml.autolr.config import AutoLRConfig
from dml.policies.autolr import AutoLRPolicy
from dml.policies.base import PolicyContext
from dml.training.param_groups import GroupInfo
from tests.conftest import tiny_backbone

ASCENDING = [1e-6, 2e-6, 3e-6]  # score 1.0: accepted at any threshold <= 1
DESCENDING = [3e-6, 2e-6, 1e-6]  # score 1 - 2*4/9 = 1/9: rejected at 0.94


def make_policy(
    variations: list[list[float]],
    unit_lr: float = 1e-3,
    head_initial: float = 1e-2,
    loss_initial: float = 1e-1,
    **overrides,
) -> AutoLRPolicy:
    """An AutoLR policy over 3 units whose trials measure `variations`, in order."""
    # the reference values, spelled out so a change of the shipped defaults cannot move them
    reference = {
        "alpha": 2.0,
        "beta": 0.4,
        "threshold": 0.94,
        "threshold_decay": 0.99,
        "threshold_floor": 0.8,
        "max_trials": 5,
        "stem_factor": 0.5,
        "head_lr": 1e-2,
        "drop_epoch": 30,
        "drop_factor": 0.2,
        "lr_min": 1e-6,
        "lr_max": 1.0,
        "reset_momentum": True,
    }
    cfg = OmegaConf.merge(OmegaConf.structured(AutoLRConfig), reference, overrides)
    backbone = tiny_backbone(width=2, units=3)
    infos = [GroupInfo("stem", "stem")]
    infos += [GroupInfo(f"unit{k + 1}", "unit", k) for k in range(3)]
    infos += [GroupInfo("head", "head"), GroupInfo("loss", "loss")]
    params = [list(backbone.stem.parameters())]
    params += [list(u.parameters()) for u in backbone.units]
    params += [[nn.Parameter(torch.zeros(1))], [nn.Parameter(torch.zeros(1))]]
    lrs = [unit_lr] * 4 + [head_initial, loss_initial]
    groups = [
        {"params": p, "lr": lr, "initial_lr": lr, "name": info.name}
        for p, lr, info in zip(params, lrs, infos)
    ]
    optimizer = torch.optim.SGD(groups, lr=unit_lr, momentum=0.9)
    feed = iter(variations)
    ctx = PolicyContext(
        optimizer=optimizer,
        groups=infos,
        backbone=backbone,
        epochs=100,
        steps_per_epoch=1,
        snapshot=lambda: {},
        restore=lambda token: None,
        echo=lambda line: None,
        sync=lambda measured: list(next(feed)),  # the scripted variation of this trial
    )
    policy = AutoLRPolicy(cfg, unit_lr)
    policy.setup(ctx)
    return policy


def run_epoch(policy: AutoLRPolicy, epoch: int) -> list[dict[str, float]]:
    """Run trials of `epoch` until one is accepted; the LRs each trial trained with."""
    used = []
    while True:
        policy.begin_epoch(epoch)
        used.append(policy.current_lrs())
        if policy.end_epoch(epoch):
            return used


# Hand-worked: threshold 0.94, decay 0.99, floor 0.8, decayed at the start of epochs >= 1
# while still above 0.8:
#   e1 0.94 * 0.99 = 0.9306          e2 0.9306 * 0.99 = 0.921294
#   e3 0.921294 * 0.99 = 0.91208106  e4 0.91208106 * 0.99 = 0.9029602494
#   e5 0.893930646906                e6 0.88499134043694
#   e7 0.87614142703257              e8 0.86738001276224
#   e9 0.85870621263462              e10 0.85011915050828
#   e11 0.84161795900319             e12 0.83320177941316
#   e13 0.82486976161903             e14 0.81662106400284
#   e15 0.80845485336281             e16 0.80037030482918 (still > 0.8: one more decay)
#   e17 0.80037030482918 * 0.99 = 0.79236660178089 (now <= 0.8: no further decay)
#   e18, e19: 0.79236660178089
DEFAULT_THRESHOLDS = [
    0.94,
    0.9306,
    0.921294,
    0.91208106,
    0.9029602494,
    0.893930646906,
    0.88499134043694,
    0.87614142703257,
    0.86738001276224,
    0.85870621263462,
    0.85011915050828,
    0.84161795900319,
    0.83320177941316,
    0.82486976161903,
    0.81662106400284,
    0.80845485336281,
    0.80037030482918,
    0.79236660178089,
    0.79236660178089,
    0.79236660178089,
]


def test_default_threshold_schedule() -> None:
    """Catches decaying at epoch 0, clamping at the floor (0.8 instead of 0.79237 at epoch
    17), decaying forever, or stopping one epoch early/late (17 decays, epochs 1..17)."""
    policy = make_policy([ASCENDING] * 20)
    for epoch in range(20):
        run_epoch(policy, epoch)
    thresholds = [r["threshold"] for r in policy.epochs_log]
    assert thresholds == pytest.approx(DEFAULT_THRESHOLDS, abs=1e-12)
    assert len(set(thresholds)) == 18  # 0.94 and 17 decayed values


def test_rejected_trials_do_not_decay_threshold() -> None:
    """Catches decaying the threshold at every trial's start instead of once per epoch (the
    re-run of epoch 1 would be judged against 0.9306 * 0.99 = 0.921294)."""
    variations = [ASCENDING, DESCENDING, ASCENDING, ASCENDING]
    policy = make_policy(variations, alpha=1.0, beta=1.0)
    for epoch in range(3):
        run_epoch(policy, epoch)
    # trials: e0 t0 (accepted), e1 t0 (rejected), e1 t1 (accepted), e2 t0 (accepted)
    trials = [(t["epoch"], t["trial"], t["threshold"]) for t in policy.trials_log]
    assert [(e, k) for e, k, _ in trials] == [(0, 0), (1, 0), (1, 1), (2, 0)]
    assert [th for _, _, th in trials] == pytest.approx([0.94, 0.9306, 0.9306, 0.921294])
    assert [r["trials"] for r in policy.epochs_log] == [1, 2, 1]


def test_threshold_at_floor_does_not_decay() -> None:
    """Catches '>=' in place of '>' for the floor: a threshold equal to it must stay put."""
    policy = make_policy([ASCENDING] * 3, threshold=0.8, threshold_floor=0.8)
    for epoch in range(3):
        run_epoch(policy, epoch)
    assert [r["threshold"] for r in policy.epochs_log] == [0.8, 0.8, 0.8]


def test_threshold_may_undershoot_floor_once() -> None:
    """Catches a decay clamped to the floor: the rule multiplies while above it, so
    0.85 * 0.5 = 0.425 is taken and then kept (not 0.8)."""
    policy = make_policy([ASCENDING] * 3, threshold=0.85, threshold_decay=0.5, threshold_floor=0.8)
    for epoch in range(3):
        run_epoch(policy, epoch)
    assert [r["threshold"] for r in policy.epochs_log] == pytest.approx([0.85, 0.425, 0.425])


def test_drop_epoch_scales_every_lr_once() -> None:
    """Catches a drop at the wrong epoch, a drop repeated at every epoch after it, and a head
    or loss LR that is left out of the drop."""
    policy = make_policy([ASCENDING] * 6, drop_epoch=3, drop_factor=0.2)
    used = [run_epoch(policy, epoch)[0] for epoch in range(6)]
    # before: units 1e-3, stem 0.5 * 1e-3 = 5e-4, head 1e-2, loss 1e-1 (its initial LR)
    before = {"stem": 5e-4, "unit1": 1e-3, "unit2": 1e-3, "unit3": 1e-3}
    before |= {"head": 1e-2, "loss": 1e-1}
    # from epoch 3: 1e-3 * 0.2 = 2e-4, stem 0.5 * 2e-4 = 1e-4, head 1e-2 * 0.2 = 2e-3,
    # loss 1e-1 * 0.2 = 2e-2 (a second drop at epoch 4 would give 4e-5 for the units)
    after = {"stem": 1e-4, "unit1": 2e-4, "unit2": 2e-4, "unit3": 2e-4}
    after |= {"head": 2e-3, "loss": 2e-2}
    for epoch in range(3):
        assert used[epoch] == pytest.approx(before), epoch
    for epoch in range(3, 6):
        assert used[epoch] == pytest.approx(after), epoch
    assert policy.epochs_log[-1]["lr"] == pytest.approx([2e-4, 2e-4, 2e-4])


def test_eq16_update_then_drop_of_tuned_lrs_with_stem_following_unit1() -> None:
    """Catches the drop resetting tuned LRs to base * factor, a stem LR hard-wired to 0.5 or
    taken from the base LR / another unit, and a head LR that AutoLR tunes."""
    variations = [DESCENDING, ASCENDING, ASCENDING]
    policy = make_policy(
        variations, alpha=1.0, beta=1.0, stem_factor=0.25, drop_epoch=1, drop_factor=0.2
    )
    epoch0 = run_epoch(policy, 0)
    epoch1 = run_epoch(policy, 1)
    assert len(epoch0) == 2 and len(epoch1) == 1
    # epoch 0, trial 0: v0 = [3, 2, 1]e-6, score 1/9 < 0.94 -> rejected.
    # targets (alpha = beta = 1): lower = min = 1e-6, upper = max = 3e-6 -> [1, 2, 3]e-6
    # Eq. 16: 1e-3 * 1/3 = 3.33333e-4, 1e-3 * 2/2 = 1e-3, 1e-3 * 3/1 = 3e-3
    # stem = 0.25 * 3.33333e-4 = 8.33333e-5; head/loss unchanged at 1e-2 / 1e-1
    assert epoch0[1] == pytest.approx(
        {
            "stem": 8.333333333e-5,
            "unit1": 3.333333333e-4,
            "unit2": 1e-3,
            "unit3": 3e-3,
            "head": 1e-2,
            "loss": 1e-1,
        },
        rel=1e-9,
    )
    assert policy.epochs_log[0]["target"] == pytest.approx([1e-6, 2e-6, 3e-6])
    # epoch 1 = drop epoch: 3.33333e-4 * 0.2 = 6.66667e-5, 1e-3 * 0.2 = 2e-4,
    # 3e-3 * 0.2 = 6e-4; stem 0.25 * 6.66667e-5 = 1.66667e-5; head 2e-3, loss 2e-2
    assert epoch1[0] == pytest.approx(
        {
            "stem": 1.666666667e-5,
            "unit1": 6.666666667e-5,
            "unit2": 2e-4,
            "unit3": 6e-4,
            "head": 2e-3,
            "loss": 2e-2,
        },
        rel=1e-9,
    )


def test_head_lr_fixed_at_config_keeping_loss_multiplier() -> None:
    """Catches the head LR staying at its optimizer value instead of autolr.head_lr, or the
    loss group losing its multiplier (10x the head here)."""
    policy = make_policy(
        [DESCENDING, ASCENDING], alpha=1.0, beta=1.0, head_lr=0.02, head_initial=0.01
    )
    trials = run_epoch(policy, 0)
    # head_scale = 0.02 / 0.01 = 2: head 0.01 * 2 = 0.02, loss 0.1 * 2 = 0.2, in both trials
    assert [t["head"] for t in trials] == pytest.approx([0.02, 0.02])
    assert [t["loss"] for t in trials] == pytest.approx([0.2, 0.2])
