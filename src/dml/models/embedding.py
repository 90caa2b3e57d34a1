"""The retrieval model: backbone, global pooling and a linear embedding head."""

from __future__ import annotations

import torch
from torch import nn

from dml.errors import DmlError
from dml.models.backbones import Backbone

POOLINGS = ("avg", "max", "avgmax")


class EmbeddingNet(nn.Module):
    """Backbone -> global pooling -> Linear(embedding_dim); forward returns raw embeddings."""

    def __init__(self, backbone: Backbone, embedding_dim: int, pooling: str = "avg") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise DmlError(f"model.pooling='{pooling}': expected one of {list(POOLINGS)}")
        if embedding_dim <= 0:
            raise DmlError(f"model.embedding_dim={embedding_dim}: expected a positive integer")
        self.backbone = backbone
        self.pooling = pooling
        self.head = nn.Linear(backbone.out_channels, embedding_dim)
        nn.init.kaiming_normal_(self.head.weight, mode="fan_out")
        nn.init.zeros_(self.head.bias)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Global pooling of a feature map to one vector per image."""
        if self.pooling == "avg":
            return x.mean(dim=(2, 3))
        if self.pooling == "max":
            return x.amax(dim=(2, 3))
        return x.mean(dim=(2, 3)) + x.amax(dim=(2, 3))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's pooled features, before the embedding head."""
        return self.pool(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(x))
