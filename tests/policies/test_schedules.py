"""Supplement E schedules as pure functions, and their application to param groups."""

from __future__ import annotations

import pytest

from dml.errors import DmlError
from dml.policies import build_policy
from dml.policies.schedules import cosine_restarts, step_decay, triangular
from dml.validation import check_config
from tests.conftest import compose_cfg, tiny_trainer
from tests.policies.sgd import sgd_moves, sgd_policy


def test_step_decay():
    """Catches the single drop firing one epoch late or early (t_d = 30 means from epoch 30)."""
    assert step_decay(29.99, 1e-3, 30, 0.1) == 1e-3
    assert step_decay(30, 1e-3, 30, 0.1) == pytest.approx(1e-4)


def test_step_decay_every():
    """Catches `every` ignored or counted from 1: StepLR gives x0.5 at 5, x0.25 at 10 and 12."""
    assert step_decay(4.99, 0.01, 30, 0.5, every=5) == 0.01
    assert step_decay(5, 0.01, 30, 0.5, every=5) == pytest.approx(0.005)
    assert step_decay(10, 0.01, 30, 0.5, every=5) == pytest.approx(0.0025)
    assert step_decay(12, 0.01, 30, 0.5, every=5) == pytest.approx(0.0025)


def test_triangular_cycles():
    """Catches a cycle starting at l_max or a wrong period (3 cycles over 30 epochs: 10)."""
    f = lambda t: triangular(t, 30, 1e-2, 1e-3, 3)  # noqa: E731
    assert f(0) == pytest.approx(1e-3) and f(10) == pytest.approx(1e-3)
    assert f(5) == pytest.approx(1e-2) and f(25) == pytest.approx(1e-2)
    assert f(2.5) == pytest.approx(5.5e-3)


def test_cosine_restarts():
    """Catches resets counted as periods (2 resets over 30 epochs are 3 periods of 10)."""
    f = lambda t: cosine_restarts(t, 30, 1e-2, 1e-4, 2)  # noqa: E731
    assert f(0) == pytest.approx(1e-2) and f(10) == pytest.approx(1e-2)
    assert f(5) == pytest.approx((1e-2 + 1e-4) / 2)
    assert f(9.999) == pytest.approx(1e-4, rel=1e-2)


def test_step_l_max_is_the_absolute_backbone_lr():
    """Catches l_max ignored: with optimizer.lr 1e-3 and l_max 0.01 the units must train at
    0.01 (the old rescaling kept them at 1e-3), the head at 10x and the loss at 20x that."""
    policy, optimizer, params = sgd_policy(["lr_policy=step", "lr_policy.l_max=0.01"])
    before = sgd_moves(policy, optimizer, params, epoch=29, step=3)
    assert before == pytest.approx(
        {"stem": 0.01, "unit1": 0.01, "unit2": 0.01, "head": 0.1, "loss": 0.2}, rel=1e-5
    )
    after = sgd_moves(policy, optimizer, params, epoch=30, step=0)
    assert after == pytest.approx(
        {"stem": 0.001, "unit1": 0.001, "unit2": 0.001, "head": 0.01, "loss": 0.02}, rel=1e-5
    )


def test_step_every_through_optimizer_ignores_drop_epoch():
    """Catches `every` not wired through the step builder, or drop_epoch still applied with it
    (drop_epoch=2 would halve the LR before epoch 5)."""
    policy, optimizer, _ = sgd_policy(
        ["lr_policy=step", "lr_policy.l_max=0.01", "lr_policy.every=5", "lr_policy.gamma=0.5",
         "lr_policy.drop_epoch=2"]
    )  # fmt: skip
    expected = {4: 0.01, 5: 0.005, 10: 0.0025, 12: 0.0025}
    for epoch, unit_lr in expected.items():
        policy.step(epoch, 0)
        lrs = policy.current_lrs()
        assert lrs["unit2"] == pytest.approx(unit_lr), epoch
        assert lrs["head"] == pytest.approx(10 * unit_lr), epoch


@pytest.mark.parametrize(
    ("epoch", "step", "unit_lr"),
    [(0, 0, 1e-3), (2, 2, 5.5e-3), (10, 0, 1e-3), (15, 0, 1e-2)],
)
def test_cyclic_through_optimizer(epoch, step, unit_lr):
    """Catches l_min/l_max taken as ratios of optimizer.lr: 2 cycles over 20 epochs (period 10)
    from 1e-3 to 1e-2 give 1e-3 at 0 and 10, 1e-2 at 15 and 5.5e-3 a quarter in (t = 2.5)."""
    policy, optimizer, params = sgd_policy(
        ["lr_policy=cyclic", "lr_policy.l_max=0.01", "lr_policy.l_min=0.001",
         "lr_policy.cycles=2"],
        epochs=20,
    )  # fmt: skip
    moved = sgd_moves(policy, optimizer, params, epoch, step)
    assert moved["unit1"] == pytest.approx(unit_lr, rel=1e-5)
    assert moved["stem"] == pytest.approx(unit_lr, rel=1e-5)
    assert moved["head"] == pytest.approx(10 * unit_lr, rel=1e-5)


@pytest.mark.parametrize(
    ("epoch", "step", "unit_lr"),
    [(0, 0, 1e-2), (2, 2, 8.681981e-3), (5, 0, 5.5e-3), (12, 2, 8.681981e-3)],
)
def test_sgdr_through_optimizer(epoch, step, unit_lr):
    """Catches a missing restart or a wrong phase: 1 reset over 20 epochs (period 10) from 1e-2
    to 1e-3; t = 2.5 and 12.5 give 1e-3 + 4.5e-3 * (1 + cos(pi/4)) = 8.681981e-3."""
    policy, optimizer, params = sgd_policy(
        ["lr_policy=sgdr", "lr_policy.l_max=0.01", "lr_policy.l_min=0.001",
         "lr_policy.resets=1"],
        epochs=20,
    )  # fmt: skip
    moved = sgd_moves(policy, optimizer, params, epoch, step)
    assert moved["unit2"] == pytest.approx(unit_lr, rel=1e-5)
    assert moved["loss"] == pytest.approx(20 * unit_lr, rel=1e-5)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["lr_policy=constant", "lr_policy.l_max=0"], "lr_policy.l_max=0"),
        (["lr_policy=step", "lr_policy.l_max=-0.1"], "lr_policy.l_max=-0.1"),
        (["lr_policy=step", "lr_policy.gamma=0"], "lr_policy.gamma=0"),
        (["lr_policy=step", "lr_policy.every=-1"], "lr_policy.every=-1"),
        (["lr_policy=cyclic", "lr_policy.l_min=-0.001"], "lr_policy.l_min=-0.001"),
        (
            ["lr_policy=cyclic", "lr_policy.l_min=0.1", "lr_policy.l_max=0.01"],
            "lr_policy.l_min=0.1",
        ),
        (["lr_policy=cyclic", "lr_policy.cycles=0"], "lr_policy.cycles=0"),
        (["lr_policy=sgdr", "lr_policy.l_min=0.1", "lr_policy.l_max=0.01"], "l_min=0.1"),
        (["lr_policy=sgdr", "lr_policy.resets=-1"], "lr_policy.resets=-1"),
    ],
)
def test_out_of_range_values_are_one_line_errors(overrides, needle):
    """Catches silent nonsense schedules (negative LRs, zero-length cycles, l_min above l_max):
    the checks (or the builder, for l_min against l_max) must name the key, the value and the
    allowed range on one line."""
    cfg = compose_cfg(overrides)
    with pytest.raises(DmlError) as info:
        check_config(cfg)
        build_policy(cfg)
    message = str(info.value)
    assert needle in message and "expected" in message and "\n" not in message


@pytest.mark.parametrize(
    ("name", "expected"),
    [("constant", 0.05), ("step", 0.05), ("cyclic", 0.037525), ("sgdr", 0.015502048)],
)
def test_schedule_moves_backbone_and_keeps_head_ratio(name, expected, tmp_path):
    """Catches the trainer not calling step per batch: the last step of epoch 1 (t = 1.75 of 2
    epochs) must hold the schedule's value; cyclic/sgdr have 3 periods of 2/3, so phase 0.625:
    cyclic 1e-4 + 0.0499 * 0.75, sgdr 1e-4 + 0.02495 * (1 + cos(0.625 pi))."""
    cfg = compose_cfg([f"lr_policy={name}", "lr_policy.l_max=0.05"])
    policy = build_policy(cfg)
    trainer = tiny_trainer(policy, tmp_path, epochs=2)
    trainer.fit()
    lrs = policy.current_lrs()
    assert lrs["unit1"] == pytest.approx(expected)
    assert lrs["head"] == pytest.approx(expected)  # tiny_trainer uses head_lr == lr
    assert len(trainer.history) == 2 and all(h["trials"] == 1 for h in trainer.history)
