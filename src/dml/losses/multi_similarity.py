"""pytorch-metric-learning's MultiSimilarityLoss fed by its MultiSimilarityMiner (Wang et al.,
CVPR 2019): the worked example of docs/extending.md."""

from __future__ import annotations

from dataclasses import dataclass

from pytorch_metric_learning import losses, miners

from dml.losses.base import LOSSES, LossConfig
from dml.losses.mined import MinedLoss
from dml.predicates import NON_NEGATIVE, POSITIVE


@dataclass
class MultiSimilarityConfig(LossConfig):
    alpha: float = 2.0  # weight of the positive pairs
    beta: float = 50.0  # weight of the negative pairs
    base: float = 0.5  # the similarity margin both are measured from
    epsilon: float = 0.1  # the miner keeps pairs within epsilon of the hardest other pair


@LOSSES.register(
    "multi_similarity",
    MultiSimilarityConfig,
    checks={"alpha": POSITIVE, "beta": POSITIVE, "base": NON_NEGATIVE, "epsilon": NON_NEGATIVE},
)
def build_multi_similarity(cfg, num_classes: int, embedding_dim: int) -> MinedLoss:
    """Multi-similarity loss over the pairs the multi-similarity miner keeps in each batch."""
    loss = losses.MultiSimilarityLoss(alpha=cfg.alpha, beta=cfg.beta, base=cfg.base)
    return MinedLoss(loss, miners.MultiSimilarityMiner(epsilon=cfg.epsilon))
