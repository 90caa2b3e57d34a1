"""Loss construction: pytorch-metric-learning losses (and miners) behind one call signature."""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses, miners
from torch import nn

from dml.errors import DmlError
from dml.losses.softmax import SoftmaxLoss

MINER_TYPES = ("semihard", "hard", "all", "easy")


class MinedLoss(nn.Module):
    """A pair/triplet loss fed by a miner: loss(embeddings, labels, miner(embeddings, labels))."""

    def __init__(self, loss: nn.Module, miner: nn.Module | None) -> None:
        super().__init__()
        self.loss = loss
        self.miner = miner

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        tuples = self.miner(embeddings, labels) if self.miner is not None else None
        return self.loss(embeddings, labels, tuples)


def build_loss(cfg, num_classes: int, embedding_dim: int) -> nn.Module:
    """The configured loss as a module taking (embeddings, labels); its parameters are its own."""
    if cfg.name == "softmax":
        # .get: configs saved before classifier_std existed lack the key
        return SoftmaxLoss(num_classes, embedding_dim, cfg.temperature, cfg.get("classifier_std"))
    if cfg.name == "proxy_anchor":
        return losses.ProxyAnchorLoss(
            num_classes=num_classes,
            embedding_size=embedding_dim,
            margin=cfg.margin,
            alpha=cfg.alpha,
        )
    if cfg.name == "triplet":
        if cfg.miner not in MINER_TYPES:
            raise DmlError(f"loss.miner='{cfg.miner}': expected one of {list(MINER_TYPES)}")
        miner = miners.TripletMarginMiner(margin=cfg.margin, type_of_triplets=cfg.miner)
        return MinedLoss(losses.TripletMarginLoss(margin=cfg.margin), miner)
    raise DmlError(f"unknown loss.name '{cfg.name}': expected softmax, triplet or proxy_anchor")


__all__ = ["MinedLoss", "SoftmaxLoss", "build_loss"]
