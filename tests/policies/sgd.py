"""LR policies bound to a plain SGD over one 1-element tensor per param group, so each step's
move is the LR it used; shared by the schedule and per-layer policy tests."""

from __future__ import annotations

import torch

from dml.policies import build_policy
from dml.policies.base import PolicyContext
from dml.training.param_groups import GroupInfo
from tests.conftest import compose_cfg

GROUPS = [
    GroupInfo("stem", "stem"),
    GroupInfo("unit1", "unit", 0),
    GroupInfo("unit2", "unit", 1),
    GroupInfo("head", "head"),
    GroupInfo("loss", "loss"),
]
# optimizer.lr = 1e-3 for stem and units, head_lr = 1e-2, and a loss multiplier of 2
INITIAL = {"stem": 1e-3, "unit1": 1e-3, "unit2": 1e-3, "head": 1e-2, "loss": 2e-2}


def sgd_policy(overrides: list[str], epochs: int = 50, steps_per_epoch: int = 4):
    """A composed LR policy bound to a plain SGD over one 1-element tensor per group."""
    policy = build_policy(compose_cfg(overrides))
    params = {name: torch.nn.Parameter(torch.zeros(1)) for name in INITIAL}
    optimizer = torch.optim.SGD(
        [{"params": [params[g.name]], "lr": INITIAL[g.name], "initial_lr": INITIAL[g.name]}
         for g in GROUPS],
        lr=INITIAL["unit1"],
    )  # fmt: skip
    ctx = PolicyContext(
        optimizer=optimizer,
        groups=GROUPS,
        backbone=None,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        snapshot=lambda: None,
        restore=lambda token: None,
    )
    policy.setup(ctx)
    return policy, optimizer, params


def sgd_moves(policy, optimizer, params, epoch: int, step: int) -> dict[str, float]:
    """How far one SGD step with unit gradients moves each group (= the LR it used)."""
    policy.step(epoch, step)
    before = {name: p.item() for name, p in params.items()}
    for p in params.values():
        p.grad = torch.ones(1)
    optimizer.step()
    return {name: before[name] - p.item() for name, p in params.items()}
