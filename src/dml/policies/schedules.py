"""Single-LR schedules of supplement E as pure functions of continuous epoch time t.

l_max and l_min are absolute backbone LRs: every stem and unit group is set to the
schedule's value, and head and loss groups keep their configured ratio to the backbone
(optimizer.head_lr / optimizer.lr), so they move by the same factor.

The schedules are pure functions of t = epoch + step / steps_per_epoch rather than
torch.optim.lr_scheduler objects: those count their own step() calls, so an AutoLR-style
re-run or a resume would need their state restored in step with the trainer's, and
StepLR / CosineAnnealingWarmRestarts move once per epoch unless driven with fractional
epochs. A function of t gives the same LR for the same (epoch, step) whatever happened
before, and needs no state in checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from dml.errors import DmlError
from dml.policies.base import POLICIES, LRPolicy, LRPolicyConfig, PolicyContext
from dml.predicates import NON_NEGATIVE, POSITIVE, integer_at_least

BACKBONE_KINDS = ("stem", "unit")

Schedule = Callable[[float, float], float]  # (t, total epochs) -> backbone LR


def step_decay(t: float, l_max: float, drop_epoch: int, gamma: float, every: int = 0) -> float:
    """Step decay: every=0 drops once (x gamma from drop_epoch on); every>0 as torch's StepLR.

    With every > 0 the LR is l_max * gamma ** floor(t / every) and drop_epoch is unused.
    """
    if every > 0:
        return l_max * gamma ** math.floor(t / every)
    return l_max * gamma if t >= drop_epoch else l_max


def triangular(t: float, total: float, l_max: float, l_min: float, cycles: int) -> float:
    """Triangular cyclic LR (Smith 2017): `cycles` periods over `total` epochs, from l_min."""
    period = total / cycles
    phase = (t % period) / period
    return l_min + (l_max - l_min) * (1.0 - abs(2.0 * phase - 1.0))


def cosine_restarts(t: float, total: float, l_max: float, l_min: float, resets: int) -> float:
    """SGDR: cosine from l_max to l_min, restarted `resets` times (resets + 1 equal periods)."""
    period = total / (resets + 1)
    phase = (t % period) / period
    return l_min + 0.5 * (l_max - l_min) * (1.0 + math.cos(math.pi * phase))


class SchedulePolicy(LRPolicy):
    """Sets every stem/unit group to fn(t) and every head/loss group to its ratio times that."""

    def __init__(self, name: str, l_max: float, fn: Schedule | None = None) -> None:
        self.name = name
        self.l_max = float(l_max)
        self.fn: Schedule = fn or (lambda t, total: self.l_max)

    def setup(self, ctx: PolicyContext) -> None:
        """Bind to the optimizer and read the backbone's initial LR the head ratios refer to."""
        super().setup(ctx)
        backbone = [
            g["initial_lr"]
            for info, g in zip(ctx.groups, ctx.optimizer.param_groups)
            if info.kind in BACKBONE_KINDS
        ]
        if not backbone:
            raise DmlError(f"lr_policy={self.name} needs at least one stem or unit param group")
        if len(set(backbone)) > 1:
            # the head ratio would depend on which backbone group was picked
            raise DmlError(
                f"lr_policy={self.name}: backbone groups start at different LRs {backbone}; "
                "schedules need one backbone LR (optimizer.lr)"
            )
        self.backbone_initial_lr = float(backbone[0])

    def lrs_at(self, t: float) -> list[float]:
        """One LR per optimizer group at continuous epoch time t."""
        lr = self.fn(t, self.ctx.epochs)
        return [
            lr if info.kind in BACKBONE_KINDS else g["initial_lr"] * lr / self.backbone_initial_lr
            for info, g in zip(self.ctx.groups, self.ctx.optimizer.param_groups)
        ]

    def begin_epoch(self, epoch: int) -> None:
        """Set the LRs of the epoch's start (t = epoch)."""
        # so LRs read between epochs (logs, checkpoints) are the schedule's, not optimizer.lr
        self.set_lrs(self.lrs_at(float(epoch)))

    def step(self, epoch: int, step: int) -> None:
        """Set the LRs at t = epoch + step / steps_per_epoch."""
        self.set_lrs(self.lrs_at(epoch + step / max(1, self.ctx.steps_per_epoch)))


def _l_min_checked(cfg) -> float:
    """lr_policy.l_min, which must lie in [0, l_max] (a relation no single-key check sees)."""
    l_min, l_max = float(cfg.l_min), float(cfg.l_max)
    if not 0 <= l_min <= l_max:
        raise DmlError(
            f"lr_policy.l_min={cfg.l_min} is out of range: expected 0 <= l_min <= l_max ({l_max})"
        )
    return l_min


@dataclass
class StepPolicyConfig(LRPolicyConfig):
    drop_epoch: int = 30
    gamma: float = 0.1
    every: int = 0  # > 0: multiply by gamma every `every` epochs (drop_epoch unused)


@dataclass
class CyclicPolicyConfig(LRPolicyConfig):
    l_min: float = 1e-4
    cycles: int = 3


@dataclass
class SGDRPolicyConfig(LRPolicyConfig):
    l_min: float = 1e-4
    resets: int = 2


@POLICIES.register("constant", LRPolicyConfig)
def build_constant(cfg) -> SchedulePolicy:
    """One LR for every backbone group, all run long."""
    return SchedulePolicy("constant", float(cfg.l_max))


@POLICIES.register(
    "step",
    StepPolicyConfig,
    checks={
        "drop_epoch": integer_at_least(0),
        "gamma": POSITIVE,
        "every": integer_at_least(0, "0: one drop at drop_epoch"),
    },
)
def build_step(cfg) -> SchedulePolicy:
    """Step decay: x gamma from drop_epoch on, or every `every` epochs."""
    l_max, drop, gamma, every = float(cfg.l_max), int(cfg.drop_epoch), float(cfg.gamma), cfg.every
    return SchedulePolicy(
        "step", l_max, lambda t, total: step_decay(t, l_max, drop, gamma, int(every))
    )


@POLICIES.register(
    "cyclic",
    CyclicPolicyConfig,
    checks={"l_min": NON_NEGATIVE, "cycles": integer_at_least(1)},
)
def build_cyclic(cfg) -> SchedulePolicy:
    """Triangular cycles between l_min and l_max."""
    l_max, l_min, cycles = float(cfg.l_max), _l_min_checked(cfg), int(cfg.cycles)
    return SchedulePolicy(
        "cyclic", l_max, lambda t, total: triangular(t, total, l_max, l_min, cycles)
    )


@POLICIES.register(
    "sgdr",
    SGDRPolicyConfig,
    checks={"l_min": NON_NEGATIVE, "resets": integer_at_least(0)},
)
def build_sgdr(cfg) -> SchedulePolicy:
    """Cosine from l_max to l_min with `resets` warm restarts."""
    l_max, l_min, resets = float(cfg.l_max), _l_min_checked(cfg), int(cfg.resets)
    return SchedulePolicy(
        "sgdr", l_max, lambda t, total: cosine_restarts(t, total, l_max, l_min, resets)
    )
