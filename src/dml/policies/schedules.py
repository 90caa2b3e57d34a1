"""Single-LR schedules of supplement E as pure functions of continuous epoch time t."""

from __future__ import annotations

import math

from dml.policies.base import LRPolicy


def step_decay(t: float, l_max: float, drop_epoch: int, gamma: float) -> float:
    """l_max before drop_epoch, l_max * gamma from it on."""
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
    """Moves every group's LR with one schedule: backbone groups take it as is, head and loss
    groups keep their ratio to l_max (so head_lr stays head_lr/lr times the backbone's)."""

    def __init__(self, name: str, l_max: float, fn=None) -> None:
        self.name = name
        self.l_max = l_max
        self.fn = fn or (lambda t, total: l_max)

    def step(self, epoch: int, step: int) -> None:
        t = epoch + step / max(1, self.ctx.steps_per_epoch)
        scale = self.fn(t, self.ctx.epochs) / self.l_max
        self.set_lrs([g["initial_lr"] * scale for g in self.ctx.optimizer.param_groups])


def build_schedule(cfg) -> SchedulePolicy:
    """The schedule policy named by the lr_policy config."""
    if cfg.name == "constant":
        return SchedulePolicy("constant", cfg.l_max)
    if cfg.name == "step":
        return SchedulePolicy(
            "step", cfg.l_max, lambda t, total: step_decay(t, cfg.l_max, cfg.drop_epoch, cfg.gamma)
        )
    if cfg.name == "cyclic":
        return SchedulePolicy(
            "cyclic",
            cfg.l_max,
            lambda t, total: triangular(t, total, cfg.l_max, cfg.l_min, cfg.cycles),
        )
    if cfg.name == "sgdr":
        return SchedulePolicy(
            "sgdr",
            cfg.l_max,
            lambda t, total: cosine_restarts(t, total, cfg.l_max, cfg.l_min, cfg.resets),
        )
    raise ValueError(f"not a schedule: {cfg.name}")
