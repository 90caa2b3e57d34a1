"""Softmax cross-entropy through a linear classifier on the embedding (the reference loss)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dml.losses.base import LOSSES, LossConfig
from dml.predicates import POSITIVE, optional, positive


@dataclass
class SoftmaxLossConfig(LossConfig):
    temperature: float = 1.0
    classifier_std: float | None = None  # N(0, std) init of the classifier; None: default


class SoftmaxLoss(nn.Module):
    """Linear classifier over the training classes + cross-entropy; it owns the classifier."""

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        temperature: float = 1.0,
        classifier_std: float | None = None,
    ) -> None:
        super().__init__()
        self.classifier = nn.Linear(embedding_dim, num_classes)
        if classifier_std is not None:
            # the AutoLR reference draws the classifier from N(0, 0.001) with zero bias
            nn.init.normal_(self.classifier.weight, mean=0.0, std=classifier_std)
            nn.init.zeros_(self.classifier.bias)
        self.temperature = temperature
        self.ce = nn.CrossEntropyLoss()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.ce(self.classifier(embeddings) / self.temperature, labels)


@LOSSES.register(
    "softmax",
    SoftmaxLossConfig,
    checks={
        "temperature": POSITIVE,
        "classifier_std": (optional(positive), "null or a number > 0"),
    },
    classifier=True,
)
def build_softmax(cfg, num_classes: int, embedding_dim: int) -> SoftmaxLoss:
    """The softmax loss over num_classes (.get: configs saved before classifier_std lack it)."""
    return SoftmaxLoss(num_classes, embedding_dim, cfg.temperature, cfg.get("classifier_std"))
