"""Backbones, unit mapping (one registered function per family), pruning, the embedding model
and its factory."""

from dml.models.backbones import Backbone, build_torchvision, make_backbone
from dml.models.embedding import EmbeddingNet
from dml.models.factory import build_model, count_params
from dml.models.pruning import units_to_keep
from dml.models.units import FAMILIES, UnitMap, map_resnet, register_family
from dml.registry import import_submodules

import_submodules(__name__)  # a family in a module of its own registers itself

__all__ = [
    "FAMILIES",
    "Backbone",
    "EmbeddingNet",
    "UnitMap",
    "build_model",
    "build_torchvision",
    "count_params",
    "make_backbone",
    "map_resnet",
    "register_family",
    "units_to_keep",
]
