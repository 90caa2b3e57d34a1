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
