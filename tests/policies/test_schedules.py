"""Supplement E schedules as pure functions, and their application to param groups."""

from __future__ import annotations

import pytest

from dml.policies import build_policy
from dml.policies.schedules import cosine_restarts, step_decay, triangular
from tests.conftest import compose_cfg, tiny_trainer


def test_step_decay():
    assert step_decay(29.99, 1e-3, 30, 0.1) == 1e-3
    assert step_decay(30, 1e-3, 30, 0.1) == pytest.approx(1e-4)


def test_triangular_cycles():
    # 3 cycles over 30 epochs: period 10, l_min at 0/10/20, l_max at 5/15/25
    f = lambda t: triangular(t, 30, 1e-2, 1e-3, 3)  # noqa: E731
    assert f(0) == pytest.approx(1e-3) and f(10) == pytest.approx(1e-3)
    assert f(5) == pytest.approx(1e-2) and f(25) == pytest.approx(1e-2)
    assert f(2.5) == pytest.approx(5.5e-3)


def test_cosine_restarts():
    # 2 resets over 30 epochs: periods of 10, l_max at each start, midpoint halfway
    f = lambda t: cosine_restarts(t, 30, 1e-2, 1e-4, 2)  # noqa: E731
    assert f(0) == pytest.approx(1e-2) and f(10) == pytest.approx(1e-2)
    assert f(5) == pytest.approx((1e-2 + 1e-4) / 2)
    assert f(9.999) == pytest.approx(1e-4, rel=1e-2)


@pytest.mark.parametrize("name", ["constant", "step", "cyclic", "sgdr"])
def test_schedule_moves_backbone_and_keeps_head_ratio(name, tmp_path):
    cfg = compose_cfg([f"lr_policy={name}", "lr_policy.l_max=0.05"])
    policy = build_policy(cfg)
    trainer = tiny_trainer(policy, tmp_path, epochs=2)
    trainer.fit()
    lrs = policy.current_lrs()
    t = 1 + 3 / 4  # last step of epoch 1 (4 steps per epoch)
    expected = {
        "constant": 0.05,
        "step": step_decay(t, 0.05, 30, 0.1),
        "cyclic": triangular(t, 2, 0.05, 1e-4, 3),
        "sgdr": cosine_restarts(t, 2, 0.05, 1e-4, 2),
    }[name]
    assert lrs["unit1"] == pytest.approx(expected)
    assert lrs["head"] == pytest.approx(expected)  # tiny_trainer uses head_lr == lr
    assert len(trainer.history) == 2 and all(h["trials"] == 1 for h in trainer.history)
