"""LR policies: constant, step, cyclic, SGDR, the per-layer baselines and AutoLR behind one
interface."""

from __future__ import annotations

from dml.errors import DmlError
from dml.policies.base import LRPolicy, PolicyContext
from dml.policies.schedules import build_schedule

SCHEDULES = ("constant", "step", "cyclic", "sgdr")
LAYERWISE = ("llrd", "gradual_unfreeze", "autorgn")
POLICIES = (*SCHEDULES, *LAYERWISE, "autolr", "replay")


def build_policy(cfg) -> LRPolicy:
    """The policy chosen by cfg.lr_policy (AutoLR reads its parameters from cfg.autolr)."""
    name = cfg.lr_policy.name
    if name == "autolr":
        from dml.policies.autolr import AutoLRPolicy

        return AutoLRPolicy(cfg.autolr, cfg.lr_policy.l_max)
    if name in SCHEDULES:
        return build_schedule(cfg.lr_policy)
    if name == "replay":
        from dml.policies.replay import ReplayPolicy

        return ReplayPolicy(cfg.lr_policy.run)
    if name in LAYERWISE:
        from dml.policies.layerwise import build_layerwise

        return build_layerwise(cfg.lr_policy)
    raise DmlError(f"unknown lr_policy.name '{name}': expected one of {list(POLICIES)}")


__all__ = ["LRPolicy", "PolicyContext", "build_policy"]
