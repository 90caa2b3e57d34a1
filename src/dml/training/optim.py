"""Optimizers, one registered builder per optimizer.name, over the run's param groups."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from omegaconf import MISSING

from dml.predicates import NON_NEGATIVE, POSITIVE
from dml.registry import Registry


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = 1e-3  # the paper's units; the twin's optimizer=sgd_twin takes 3e-3
    head_lr: float = 1e-2
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    # clear the optimizer's state (SGD momentum, AdamW moments) at the start of every epoch
    # and every re-run trial, whatever the LR policy (AutoLR's own: autolr.reset_momentum)
    reset_momentum: bool = False


def _in_unit(x) -> bool:
    return (
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and 0 <= x < 1
    )


OPTIMIZERS = Registry(
    "optimizer.name",
    "optimizer",
    checks={
        "lr": POSITIVE,
        "head_lr": POSITIVE,
        "weight_decay": NON_NEGATIVE,
        "momentum": (_in_unit, "a number in [0, 1)"),
        "betas": (lambda b: len(b) == 2 and all(_in_unit(x) for x in b), "two numbers in [0, 1)"),
    },
)


@OPTIMIZERS.register("sgd", OptimizerConfig)
def build_sgd(cfg, groups: list[dict]) -> torch.optim.Optimizer:
    """SGD with momentum (Nesterov when asked) and weight decay: the paper's."""
    return torch.optim.SGD(
        groups,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )


@OPTIMIZERS.register("adamw", OptimizerConfig)
def build_adamw(cfg, groups: list[dict]) -> torch.optim.Optimizer:
    """AdamW: the proxy-anchor paper's official recipe."""
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
    )


def build_optimizer(cfg, groups: list[dict]) -> torch.optim.Optimizer:
    """The optimizer named by cfg.name over the given param groups."""
    return OPTIMIZERS.get(cfg.name).build(cfg, groups)
