"""The LR-policy interface: the trainer calls these hooks and never asks which policy it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import MISSING

from dml.models.backbones import Backbone
from dml.predicates import POSITIVE
from dml.registry import Registry


@dataclass(frozen=True)
class GroupInfo:
    """What an optimizer param group holds: kind is 'stem', 'unit', 'head' or 'loss'."""

    name: str
    kind: str
    unit: int | None = None


@dataclass
class LRPolicyConfig:
    """The lr_policy group's keys every policy has (its YAML adds its own)."""

    name: str = MISSING
    l_max: float = 3e-3  # the YAML options follow optimizer.lr


#: policy name -> schema, builder(lr_policy group, **the groups it needs) and checks
POLICIES = Registry("lr_policy", "LR policy", checks={"l_max": POSITIVE})


@dataclass
class PolicyContext:
    """What a policy may touch: the optimizer's groups, the backbone, and trial snapshots."""

    optimizer: torch.optim.Optimizer
    groups: list[GroupInfo]
    backbone: Backbone
    epochs: int
    steps_per_epoch: int
    snapshot: Callable[[], Any]
    restore: Callable[[Any], None]
    log_scalar: Callable[[str, float, int], None] = lambda tag, value, step: None
    echo: Callable[[str], None] = print
    sync: Callable[[list[float]], list[float]] = field(default=lambda values: values)


class LRPolicy:
    """Sets per-group LRs; an epoch may be re-run when end_epoch returns False."""

    name = "base"

    def setup(self, ctx: PolicyContext) -> None:
        """Bind to the trainer's optimizer and model before the first epoch."""
        self.ctx = ctx

    def begin_epoch(self, epoch: int) -> None:
        """Called before each trial of an epoch (a re-run calls it again)."""

    def continue_trial(self, epoch: int, steps_done: int) -> bool:
        """Called after each optimisation step; False ends the trial there (AutoLR's probe)."""
        return True

    def step(self, epoch: int, step: int) -> None:
        """Called before each optimisation step; step counts within the epoch."""

    def before_update(self, epoch: int, step: int) -> None:
        """Called after the backward pass, before optimizer.step (the gradients are in place)."""

    def end_epoch(self, epoch: int) -> bool:
        """Called after each trial; True accepts the epoch, False asks for a re-run."""
        return True

    def kept_trial(self) -> int | None:
        """Which trial of the epoch just accepted holds the weights kept (None: the last)."""
        return None

    def current_lrs(self) -> dict[str, float]:
        """The LR of each param group by name."""
        return {
            info.name: g["lr"] for info, g in zip(self.ctx.groups, self.ctx.optimizer.param_groups)
        }

    def set_lrs(self, lrs: list[float]) -> None:
        """Write one LR per param group, in group order."""
        for group, lr in zip(self.ctx.optimizer.param_groups, lrs):
            group["lr"] = float(lr)

    def report(self) -> dict:
        """Extra sections for results.json (empty for plain schedules)."""
        return {}

    def state_dict(self) -> dict:
        """Everything needed to resume the policy exactly."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict returned."""
