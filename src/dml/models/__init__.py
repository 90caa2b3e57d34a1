"""Backbones, unit mapping, pruning and the embedding model."""

from dml.models.backbones import Backbone, build_torchvision, make_backbone
from dml.models.embedding import EmbeddingNet
from dml.models.pruning import units_to_keep
from dml.models.units import UnitMap, map_resnet

__all__ = [
    "Backbone",
    "EmbeddingNet",
    "UnitMap",
    "build_torchvision",
    "make_backbone",
    "map_resnet",
    "units_to_keep",
]
