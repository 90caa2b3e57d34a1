"""Optimizer construction from the `optimizer` config group."""

from __future__ import annotations

import torch

from dml.errors import DmlError


def build_optimizer(cfg, groups: list[dict]) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or AdamW over the given param groups."""
    if cfg.name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    if cfg.name == "adamw":
        return torch.optim.AdamW(
            groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
        )
    raise DmlError(f"unknown optimizer.name '{cfg.name}': expected sgd or adamw")
