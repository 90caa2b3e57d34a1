"""Unit mapping per backbone family."""

from __future__ import annotations

import pytest
import torch
from torchvision import models

from dml.models import build_torchvision, make_backbone, map_resnet
from dml.models.units import resnet_main_path


@pytest.mark.parametrize(
    ("arch", "units", "channels"), [("resnet18", 8, 512), ("resnet50", 16, 2048)]
)
def test_resnet_units_in_forward_order(arch, units, channels):
    net = build_torchvision(arch, last_stride=2)
    mapping = map_resnet(net)
    assert len(mapping.units) == units
    assert mapping.units[0] is net.layer1[0] and mapping.units[-1] is net.layer4[-1]
    assert make_backbone(net).out_channels == channels


def test_main_path_excludes_bn_and_shortcut():
    net = models.resnet50(weights=None)
    names = resnet_main_path(net.layer2[0])
    assert names == ["conv1.weight", "conv2.weight", "conv3.weight"]
    assert resnet_main_path(models.resnet18(weights=None).layer1[0]) == [
        "conv1.weight",
        "conv2.weight",
    ]
    with pytest.raises(TypeError):
        resnet_main_path(torch.nn.Linear(2, 2))


def test_backbone_matches_torchvision_features():
    net = build_torchvision("resnet18", last_stride=2).eval()
    backbone = make_backbone(net).eval()
    x = torch.randn(2, 3, 64, 64)
    reference = net.layer4(
        net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))))
    )
    assert torch.equal(backbone(x), reference)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_last_stride_one_doubles_final_map(arch):
    x = torch.randn(1, 3, 64, 64)
    s2 = make_backbone(build_torchvision(arch, 2)).eval()(x)
    s1 = make_backbone(build_torchvision(arch, 1)).eval()(x)
    assert s1.shape[-1] == 2 * s2.shape[-1]


# -- Vision Transformers ------------------------------------------------------------------
def test_vit_tiny_units_are_its_encoder_blocks_with_their_projections_as_main_path():
    """Catches blocks mapped out of order, the LayerNorms or biases counted in the weight
    variation, or the stem's parameters copied (then trained apart from the model's)."""
    net = build_torchvision("vit_tiny", last_stride=2, image_size=32)
    backbone = make_backbone(net)
    assert backbone.num_units == 6 and backbone.tokens
    assert [u is b for u, b in zip(backbone.units, net.encoder.layers)] == [True] * 6
    assert backbone.main_path[0] == [
        "self_attention.in_proj_weight",
        "self_attention.out_proj.weight",
        "mlp.0.weight",
        "mlp.3.weight",
    ]
    shapes = [tuple(p.shape) for p in backbone.main_path_params(5)]
    assert shapes == [(576, 192), (192, 192), (768, 192), (192, 768)]
    assert backbone.stem.class_token is net.class_token
    assert backbone.stem.pos_embedding is net.encoder.pos_embedding
    assert backbone.out_channels == 192


def test_vit_backbone_matches_torchvision_class_token():
    """Catches a stem that differs from torchvision's input side (position embedding added
    before the class token, patches in another order) or the final LayerNorm left out."""
    net = build_torchvision("vit_tiny", last_stride=2, image_size=32).eval()
    backbone = make_backbone(net).eval()
    x = torch.randn(2, 3, 32, 32)
    net.heads = torch.nn.Identity()  # torchvision's forward then returns the class token
    assert torch.allclose(backbone(x)[:, 0], net(x), atol=1e-6)


def test_pruning_a_vit_removes_exactly_the_trailing_blocks_parameters():
    """Catches pruning that keeps the removed blocks' parameters (still in the optimizer) or
    drops the final LayerNorm with them."""
    net = build_torchvision("vit_tiny", last_stride=2, image_size=32)
    backbone = make_backbone(net)
    before = {id(p) for p in backbone.parameters()}
    removed = {id(p) for b in net.encoder.layers[4:] for p in b.parameters()}
    backbone.prune(4)
    assert {id(p) for p in backbone.parameters()} == before - removed
    assert backbone.num_units == 4 and backbone(torch.randn(1, 3, 32, 32)).shape == (1, 17, 192)


def test_vit_image_size_must_be_a_multiple_of_the_patch():
    """Catches torchvision's bare AssertionError reaching the user."""
    from dml.errors import DmlError

    with pytest.raises(DmlError, match="dataset.image_size=36 for vit_tiny: expected a multiple"):
        build_torchvision("vit_tiny", last_stride=2, image_size=36)
