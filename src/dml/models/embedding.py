"""The retrieval model: backbone, global pooling and an embedding head."""

from __future__ import annotations

import torch
from torch import nn

from dml.errors import DmlError
from dml.models.backbones import Backbone


def _kaiming_linear(in_features: int, out_features: int) -> nn.Linear:
    linear = nn.Linear(in_features, out_features)
    nn.init.kaiming_normal_(linear.weight, mode="fan_out")
    nn.init.zeros_(linear.bias)
    return linear


def paper_head(in_features: int, embedding_dim: int) -> nn.Sequential:
    """The AutoLR paper's bottleneck: Linear -> BatchNorm1d -> LeakyReLU(0.1) -> Dropout(0.5)."""
    bn = nn.BatchNorm1d(embedding_dim)
    nn.init.ones_(bn.weight)
    nn.init.zeros_(bn.bias)
    return nn.Sequential(
        _kaiming_linear(in_features, embedding_dim), bn, nn.LeakyReLU(0.1), nn.Dropout(0.5)
    )


# model.pooling -> pooling over the spatial (or token) dims; "cls" reads a ViT's class token
POOLINGS = {
    "avg": lambda x, dims: x.mean(dim=dims),
    "max": lambda x, dims: x.amax(dim=dims),
    "avgmax": lambda x, dims: x.mean(dim=dims) + x.amax(dim=dims),
    "cls": None,
}
# model.head -> the embedding layer over the pooled features
HEADS = {"linear": _kaiming_linear, "paper": paper_head}


class EmbeddingNet(nn.Module):
    """Backbone -> global pooling -> head (embedding_dim); forward returns raw embeddings."""

    def __init__(
        self,
        backbone: Backbone,
        embedding_dim: int,
        pooling: str = "avg",
        head: str = "linear",
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise DmlError(f"model.pooling='{pooling}': expected one of {list(POOLINGS)}")
        if pooling == "cls" and not backbone.tokens:
            raise DmlError(
                "model.pooling='cls' needs a ViT backbone (its class token); "
                "expected avg, max or avgmax for a ResNet"
            )
        if head not in HEADS:
            raise DmlError(f"model.head='{head}': expected one of {list(HEADS)}")
        if embedding_dim <= 0:
            raise DmlError(f"model.embedding_dim={embedding_dim}: expected a positive integer")
        self.backbone = backbone
        self.pooling = pooling
        self.freeze_bn = freeze_bn
        self.head = HEADS[head](backbone.out_channels, embedding_dim)
        if freeze_bn:
            for bn in self._backbone_bns():
                for param in bn.parameters():
                    param.requires_grad_(False)
            self.train(self.training)

    def _backbone_bns(self) -> list[nn.BatchNorm2d]:
        return [m for m in self.backbone.modules() if isinstance(m, nn.BatchNorm2d)]

    def train(self, mode: bool = True) -> EmbeddingNet:
        """Set train/eval mode; with freeze_bn the backbone's BatchNorm2d layers stay in eval."""
        super().train(mode)
        if self.freeze_bn:
            # small fine-tuning batches would otherwise overwrite the pretrained running stats
            for bn in self._backbone_bns():
                bn.eval()
        return self

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Global pooling of a feature map (or of a ViT's patch tokens) to one vector per image;
        cls: a ViT's class token."""
        dims = (2, 3)
        if x.dim() == 3:  # tokens (n, 1 + patches, width): the class token, then the patches
            if self.pooling == "cls":
                return x[:, 0]
            x, dims = x[:, 1:], (1,)
        return POOLINGS[self.pooling](x, dims)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's pooled features, before the embedding head."""
        return self.pool(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(x))
