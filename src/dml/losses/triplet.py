"""pytorch-metric-learning's TripletMarginLoss fed by its TripletMarginMiner."""

from __future__ import annotations

from dataclasses import dataclass

from pytorch_metric_learning import losses, miners

from dml.losses.base import LOSSES, LossConfig
from dml.losses.mined import MinedLoss
from dml.predicates import NON_NEGATIVE, choice

MINER_TYPES = ("semihard", "hard", "all", "easy")


@dataclass
class TripletLossConfig(LossConfig):
    margin: float = 0.1
    miner: str = "semihard"


@LOSSES.register(
    "triplet", TripletLossConfig, checks={"margin": NON_NEGATIVE, "miner": choice(MINER_TYPES)}
)
def build_triplet(cfg, num_classes: int, embedding_dim: int) -> MinedLoss:
    """Triplet margin loss over the triplets the miner picks in each batch."""
    miner = miners.TripletMarginMiner(margin=cfg.margin, type_of_triplets=cfg.miner)
    return MinedLoss(losses.TripletMarginLoss(margin=cfg.margin), miner)
