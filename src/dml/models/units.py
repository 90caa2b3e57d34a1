"""Unit mapping: split a backbone into stem and tunable units (one function per family)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torchvision.models import ResNet
from torchvision.models.resnet import BasicBlock, Bottleneck


@dataclass
class UnitMap:
    """A backbone cut into a stem and forward-ordered units.

    main_path[k] names the parameters (relative to unit k) whose change defines the
    unit's weight variation (AutoLR Eq. 1).
    """

    stem: nn.Module
    units: list[nn.Module]
    main_path: list[list[str]]


def resnet_main_path(block: nn.Module) -> list[str]:
    """Main-path conv weights of a residual block (BN and shortcut left out, as the reference)."""
    if isinstance(block, Bottleneck):
        return ["conv1.weight", "conv2.weight", "conv3.weight"]
    if isinstance(block, BasicBlock):
        return ["conv1.weight", "conv2.weight"]
    raise TypeError(f"not a torchvision residual block: {type(block).__name__}")


def map_resnet(model: ResNet) -> UnitMap:
    """Stem = conv1/bn1/relu/maxpool; units = residual blocks of layer1..layer4 in order."""
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    units = [
        block
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4)
        for block in layer
    ]
    return UnitMap(stem=stem, units=units, main_path=[resnet_main_path(b) for b in units])
