"""One optimizer group per unit, plus stem, head and loss; every parameter exactly once."""

from __future__ import annotations

from dml.losses import SoftmaxLoss
from dml.models import EmbeddingNet
from dml.training.param_groups import build_param_groups
from tests.conftest import tiny_backbone


def test_groups_cover_every_parameter_once():
    model = EmbeddingNet(tiny_backbone(units=3), 8)
    loss = SoftmaxLoss(5, 8)
    groups, infos = build_param_groups(model, loss, lr=1e-3, head_lr=1e-2, loss_lr_mult=10)
    assert [g["name"] for g in groups] == ["stem", "unit1", "unit2", "unit3", "head", "loss"]
    assert [i.kind for i in infos] == ["stem", "unit", "unit", "unit", "head", "loss"]
    assert [g["lr"] for g in groups] == [1e-3] * 4 + [1e-2, 1e-1]
    ids = [id(p) for g in groups for p in g["params"]]
    expected = {id(p) for p in list(model.parameters()) + list(loss.parameters())}
    assert len(ids) == len(set(ids)) and set(ids) == expected


def test_parameterless_loss_gets_no_group():
    import torch

    model = EmbeddingNet(tiny_backbone(units=2), 8)
    groups, _ = build_param_groups(model, torch.nn.MSELoss(), lr=1e-3, head_lr=1e-2)
    assert [g["name"] for g in groups][-1] == "head"


def test_freeze_groups_stops_gradients_only_in_named_groups():
    # Bug caught: freezing the wrong unit (0- vs 1-based names) or every group.
    import pytest

    from dml.errors import DmlError
    from dml.training.param_groups import freeze_groups

    model = EmbeddingNet(tiny_backbone(units=3), 8)
    groups, _ = build_param_groups(model, SoftmaxLoss(5, 8), lr=1e-3, head_lr=1e-2)
    freeze_groups(groups, ["stem", "unit1"])
    trainable = {g["name"]: any(p.requires_grad for p in g["params"]) for g in groups}
    assert trainable == {
        "stem": False,
        "unit1": False,
        "unit2": True,
        "unit3": True,
        "head": True,
        "loss": True,
    }
    with pytest.raises(DmlError, match=r"unknown group\(s\) \['unit9'\].*'unit3'"):
        freeze_groups(groups, ["unit9"])


def test_a_vits_final_layernorm_trains_with_the_head():
    """Catches the ViT's final LayerNorm (the backbone's neck) left out of every group, so
    it never trains, or put in the last unit's group, whose LR AutoLR tunes."""
    from dml.models import build_torchvision, make_backbone

    backbone = make_backbone(build_torchvision("vit_tiny", 2, image_size=32))
    backbone.prune(3)
    model = EmbeddingNet(backbone, 8, pooling="cls")
    groups, _ = build_param_groups(model, SoftmaxLoss(5, 8), lr=1e-3, head_lr=1e-2)
    assert [g["name"] for g in groups] == ["stem", "unit1", "unit2", "unit3", "head", "loss"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) >= {id(p) for p in model.parameters()}
    head = {id(p) for p in groups[4]["params"]}
    assert {id(p) for p in backbone.neck.parameters()} <= head
    assert len(groups[4]["params"]) == 4  # LayerNorm weight and bias, Linear weight and bias
