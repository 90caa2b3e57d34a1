"""LR policies: constant, step, cyclic, SGDR, the per-layer baselines, AutoLR and replay, each
registered in POLICIES by its module, behind one interface (dml.policies.base)."""

from __future__ import annotations

from dml.policies.base import POLICIES, LRPolicy, LRPolicyConfig, PolicyContext
from dml.registry import import_submodules

import_submodules(__name__)  # every policy module registers itself


def build_policy(cfg) -> LRPolicy:
    """The policy chosen by cfg.lr_policy, given the config groups its entry needs."""
    entry = POLICIES.get(cfg.lr_policy.name)
    return entry.build(cfg.lr_policy, **{group: cfg[group] for group in entry.needs})


__all__ = ["POLICIES", "LRPolicy", "LRPolicyConfig", "PolicyContext", "build_policy"]
