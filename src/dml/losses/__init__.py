"""Losses: one module per loss (registered in LOSSES), built by name from the loss group."""

from __future__ import annotations

from torch import nn

from dml.losses.base import LOSSES, LossConfig
from dml.losses.mined import MinedLoss
from dml.losses.softmax import SoftmaxLoss
from dml.registry import import_submodules

import_submodules(__name__)  # every loss module registers itself


def build_loss(cfg, num_classes: int, embedding_dim: int) -> nn.Module:
    """The configured loss as a module taking (embeddings, labels); its parameters are its own."""
    return LOSSES.get(cfg.name).build(cfg, num_classes, embedding_dim)


__all__ = ["LOSSES", "LossConfig", "MinedLoss", "SoftmaxLoss", "build_loss"]
