"""pytorch-metric-learning's ProxyAnchorLoss; it owns one proxy per training class."""

from __future__ import annotations

from dataclasses import dataclass

from pytorch_metric_learning import losses
from torch import nn

from dml.losses.base import LOSSES, LossConfig
from dml.predicates import NON_NEGATIVE, POSITIVE


@dataclass
class ProxyAnchorLossConfig(LossConfig):
    margin: float = 0.1
    alpha: float = 32.0
    lr_mult: float = 10.0


@LOSSES.register(
    "proxy_anchor", ProxyAnchorLossConfig, checks={"margin": NON_NEGATIVE, "alpha": POSITIVE}
)
def build_proxy_anchor(cfg, num_classes: int, embedding_dim: int) -> nn.Module:
    """Proxy-anchor loss with proxies for num_classes in the embedding space."""
    return losses.ProxyAnchorLoss(
        num_classes=num_classes, embedding_size=embedding_dim, margin=cfg.margin, alpha=cfg.alpha
    )
