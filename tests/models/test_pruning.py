"""Layer-wise pruning removes trailing units and their parameters."""

from __future__ import annotations

import pytest
import torch

from dml.errors import DmlError
from dml.models import EmbeddingNet, build_torchvision, make_backbone, units_to_keep
from tests.conftest import compose_cfg


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_units_to_keep_forms():
    assert units_to_keep(16) == 16
    assert units_to_keep(16, [16]) == 15
    assert units_to_keep(16, [15, 16]) == 14
    assert units_to_keep(8, remove_last=2) == 6
    with pytest.raises(DmlError, match="trailing"):
        units_to_keep(16, [14, 16])
    with pytest.raises(DmlError, match="trailing"):
        units_to_keep(8, [16])
    with pytest.raises(DmlError, match="remove_last"):
        units_to_keep(8, remove_last=8)
    with pytest.raises(DmlError, match="not both"):
        units_to_keep(8, [8], remove_last=1)


def test_resnet50_15_16_keeps_14_units_and_drops_their_params():
    cfg = compose_cfg(["model=resnet50", "pruning='15_16'"])
    backbone = make_backbone(build_torchvision("resnet50", 1))
    removed = count(backbone.units[14]) + count(backbone.units[15])
    before = count(backbone)
    backbone.prune(units_to_keep(16, list(cfg.pruning.units), cfg.pruning.remove_last))
    assert backbone.num_units == 14
    assert count(backbone) == before - removed
    assert backbone.out_channels == 2048
    out = EmbeddingNet(backbone, 512)(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 512) and torch.isfinite(out).all()


def test_resnet18_prune_into_layer3_changes_feature_width():
    backbone = make_backbone(build_torchvision("resnet18", 2))
    backbone.prune(units_to_keep(8, remove_last=2))
    assert backbone.num_units == 6 and backbone.out_channels == 256
    assert len(backbone.main_path) == 6
    out = EmbeddingNet(backbone, 16)(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 16)
