"""A pair or triplet loss fed by a miner, behind the (embeddings, labels) call of every loss."""

from __future__ import annotations

import torch
from torch import nn


class MinedLoss(nn.Module):
    """loss(embeddings, labels, miner(embeddings, labels))."""

    def __init__(self, loss: nn.Module, miner: nn.Module | None) -> None:
        super().__init__()
        self.loss = loss
        self.miner = miner

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        tuples = self.miner(embeddings, labels) if self.miner is not None else None
        return self.loss(embeddings, labels, tuples)

    def global_batch(self) -> MinedLoss:
        """The same loss and miner over every rank's embeddings (under DDP)."""
        from pytorch_metric_learning.utils import distributed as pml_dist

        miner = pml_dist.DistributedMinerWrapper(self.miner) if self.miner is not None else None
        return MinedLoss(pml_dist.DistributedLossWrapper(self.loss), miner)
