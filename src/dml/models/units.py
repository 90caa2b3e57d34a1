"""Unit mapping: split a backbone into stem and tunable units (one function per family)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.models import ResNet, VisionTransformer
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.models.vision_transformer import EncoderBlock


@dataclass
class UnitMap:
    """A backbone cut into a stem and forward-ordered units.

    main_path[k] names the parameters (relative to unit k) whose change defines the
    unit's weight variation (AutoLR Eq. 1). neck runs after the last unit kept (a ViT's
    final LayerNorm); tokens says the units output token sequences, not feature maps.
    """

    stem: nn.Module
    units: list[nn.Module]
    main_path: list[list[str]]
    neck: nn.Module = field(default_factory=nn.Identity)
    tokens: bool = False


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


# the attention in/out projections and the two MLP weights of a torchvision EncoderBlock
VIT_MAIN_PATH = [
    "self_attention.in_proj_weight",
    "self_attention.out_proj.weight",
    "mlp.0.weight",
    "mlp.3.weight",
]


class ViTStem(nn.Module):
    """A torchvision ViT's input side: patch embedding, class token, position embedding."""

    def __init__(self, vit: VisionTransformer) -> None:
        super().__init__()
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token  # the same Parameter objects as the ViT's
        self.pos_embedding = vit.encoder.pos_embedding
        self.dropout = vit.encoder.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)  # (n, patches, hidden)
        token = self.class_token.expand(x.shape[0], -1, -1)
        return self.dropout(torch.cat([token, x], dim=1) + self.pos_embedding)


def map_vit(model: VisionTransformer) -> UnitMap:
    """Stem = patch + class token + position embedding; units = encoder blocks in order;
    neck = the encoder's final LayerNorm, after whichever block is last."""
    units = list(model.encoder.layers)
    if not all(isinstance(b, EncoderBlock) for b in units):
        raise TypeError("not a torchvision VisionTransformer encoder")
    return UnitMap(
        stem=ViTStem(model),
        units=units,
        main_path=[list(VIT_MAIN_PATH) for _ in units],
        neck=model.encoder.ln,
        tokens=True,
    )
