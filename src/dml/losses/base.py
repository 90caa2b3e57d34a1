"""What every loss shares: its config schema's base and the registry of losses."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from dml.predicates import POSITIVE
from dml.registry import Registry


@dataclass
class LossConfig:
    """The loss group's keys every loss has (its YAML adds its own)."""

    name: str = MISSING
    lr_mult: float = 1.0  # the loss's own parameters (proxies, classifier) at head LR x this


#: loss name -> schema, builder(cfg, num_classes, embedding_dim) and checks; info:
#: classifier=True for a loss that owns a linear classifier (task=classification needs one)
LOSSES = Registry("loss", "loss", checks={"lr_mult": POSITIVE})
