"""LR policies: constant, step, cyclic, SGDR and AutoLR behind one interface."""

from __future__ import annotations

from dml.errors import DmlError
from dml.policies.base import LRPolicy, PolicyContext
from dml.policies.schedules import build_schedule

POLICIES = ("constant", "step", "cyclic", "sgdr", "autolr")


def build_policy(cfg) -> LRPolicy:
    """The policy chosen by cfg.lr_policy (AutoLR reads its parameters from cfg.autolr)."""
    name = cfg.lr_policy.name
    if name == "autolr":
        from dml.policies.autolr import AutoLRPolicy

        return AutoLRPolicy(cfg.autolr, cfg.lr_policy.l_max)
    if name in POLICIES:
        return build_schedule(cfg.lr_policy)
    raise DmlError(f"unknown lr_policy.name '{name}': expected one of {list(POLICIES)}")


__all__ = ["LRPolicy", "PolicyContext", "build_policy"]
