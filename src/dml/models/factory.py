"""The retrieval model from the model and pruning groups: backbone, weights, pruning, head."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from tqdm import tqdm

from dml.models.backbones import build_torchvision, make_backbone
from dml.models.embedding import EmbeddingNet
from dml.models.pruning import units_to_keep

WeightsLoader = Callable[[nn.Module], None]  # loads pretrained weights into a torchvision model


def count_params(module: nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in module.parameters())


def build_model(
    model_cfg, pruning_cfg, image_size: int, load_weights: WeightsLoader | None = None
) -> EmbeddingNet:
    """torchvision backbone + weights (load_weights) + pruning + embedding head; prints the
    exact parameter counts before and after pruning."""
    m = model_cfg
    net = build_torchvision(m.arch, m.last_stride, image_size)
    if load_weights is not None:
        load_weights(net)
    backbone = make_backbone(net)
    total, before = backbone.num_units, count_params(backbone)
    keep = units_to_keep(total, list(pruning_cfg.units), pruning_cfg.remove_last)
    backbone.prune(keep)
    tqdm.write(
        f"backbone {m.arch}: {total} units, {before} parameters; after pruning "
        f"{total - keep} unit(s): {keep} units, {count_params(backbone)} parameters "
        f"({backbone.out_channels}-d features)"
    )
    return EmbeddingNet(backbone, m.embedding_dim, m.pooling, head=m.head, freeze_bn=m.freeze_bn)
