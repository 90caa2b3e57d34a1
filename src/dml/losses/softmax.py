"""Softmax cross-entropy through a linear classifier on the embedding (the reference loss)."""

from __future__ import annotations

import torch
from torch import nn


class SoftmaxLoss(nn.Module):
    """Linear classifier over the training classes + cross-entropy; it owns the classifier."""

    def __init__(self, num_classes: int, embedding_dim: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.classifier = nn.Linear(embedding_dim, num_classes)
        self.temperature = temperature
        self.ce = nn.CrossEntropyLoss()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.ce(self.classifier(embeddings) / self.temperature, labels)
