"""Unit mapping: split a backbone into stem and tunable units, one function per family.

Each family registers its mapping function in FAMILIES with what else is specific to it: the
torchvision class of its models, how to give one a fresh classifier (source pre-training), the
state_dict prefix of its ImageNet classifier, and a constructor per architecture name
(model.arch). A new family is one more registered mapping function plus its configs/model YAML;
nothing else learns its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models import ResNet, VisionTransformer
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.models.vision_transformer import EncoderBlock

from dml.errors import DmlError
from dml.registry import Entry, Registry


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


# arch -> a randomly initialised torchvision model for (image size, last stride)
Constructor = Callable[[int, int], nn.Module]


@dataclass(frozen=True)
class Family:
    """A backbone family: how its models map to units and what else differs between families."""

    name: str
    model_type: type
    map_units: Callable[[nn.Module], UnitMap]
    classifier: str  # the attribute holding the ImageNet classifier (its state_dict prefix)
    set_classifier: Callable[[nn.Module, int], None]  # a fresh one to num_classes
    archs: Mapping[str, Constructor]


FAMILIES = Registry("model.arch", "backbone family")


def register_family(
    name: str,
    model_type: type,
    classifier: str,
    set_classifier: Callable[[nn.Module, int], None],
    archs: Mapping[str, Constructor],
) -> Callable[[Callable[[nn.Module], UnitMap]], Callable[[nn.Module], UnitMap]]:
    """Decorator: register a mapping function as family `name`'s."""

    def add(map_units: Callable[[nn.Module], UnitMap]) -> Callable[[nn.Module], UnitMap]:
        family = Family(name, model_type, map_units, classifier, set_classifier, dict(archs))
        FAMILIES.add(Entry(name, None, map_units, info={"family": family}))
        return map_units

    return add


def families() -> list[Family]:
    """Every registered family."""
    return [entry.info["family"] for _, entry in FAMILIES.items()]


def archs() -> list[str]:
    """Every model.arch the registered families build, sorted."""
    return sorted(arch for family in families() for arch in family.archs)


def family_of_arch(arch: str) -> Family:
    """The family that builds `arch` (a one-line error listing the archs otherwise)."""
    for family in families():
        if arch in family.archs:
            return family
    raise DmlError(f"unknown model.arch '{arch}': expected one of {archs()}")


def family_of(model: nn.Module) -> Family:
    """The family a torchvision model belongs to."""
    for family in families():
        if isinstance(model, family.model_type):
            return family
    raise DmlError(f"no unit mapping for {type(model).__name__}")


def resnet_main_path(block: nn.Module) -> list[str]:
    """Main-path conv weights of a residual block (BN and shortcut left out, as the reference)."""
    if isinstance(block, Bottleneck):
        return ["conv1.weight", "conv2.weight", "conv3.weight"]
    if isinstance(block, BasicBlock):
        return ["conv1.weight", "conv2.weight"]
    raise TypeError(f"not a torchvision residual block: {type(block).__name__}")


def _resnet(build: Callable[..., ResNet]) -> Constructor:
    """A ResNet constructor whose layer4 first block takes the given stride (last stride)."""

    def make(image_size: int, last_stride: int) -> ResNet:
        model = build(weights=None)
        if last_stride == 1:
            first = model.layer4[0]
            # torchvision puts the stride in conv2 of a bottleneck, conv1 of a basic block
            strided = first.conv2 if isinstance(first, Bottleneck) else first.conv1
            strided.stride = (1, 1)
            if first.downsample is not None:
                first.downsample[0].stride = (1, 1)
        return model

    return make


def _resnet_classifier(model: ResNet, num_classes: int) -> None:
    model.fc = nn.Linear(model.fc.in_features, num_classes)


@register_family(
    "resnet",
    ResNet,
    classifier="fc",
    set_classifier=_resnet_classifier,
    archs={
        "resnet18": _resnet(tvm.resnet18),
        "resnet34": _resnet(tvm.resnet34),
        "resnet50": _resnet(tvm.resnet50),
        "resnet101": _resnet(tvm.resnet101),
    },
)
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


def vit_tiny(image_size: int) -> VisionTransformer:
    """A ViT sized for the CPU: patch 8, 6 blocks of width 192 with 3 heads (MLP 768)."""
    return VisionTransformer(
        image_size=image_size, patch_size=8, num_layers=6, num_heads=3, hidden_dim=192, mlp_dim=768
    )


def _vit(arch: str, build: Callable[..., VisionTransformer], patch: int) -> Constructor:
    """A ViT constructor at the run's image size (its position embedding); no last stride."""

    def make(image_size: int, last_stride: int) -> VisionTransformer:
        if image_size % patch:
            raise DmlError(
                f"dataset.image_size={image_size} for {arch}: expected a multiple of its "
                f"patch size {patch}"
            )
        return build(image_size)

    return make


def _vit_classifier(model: VisionTransformer, num_classes: int) -> None:
    model.heads = nn.Sequential()
    model.heads.add_module("head", nn.Linear(model.hidden_dim, num_classes))


@register_family(
    "vit",
    VisionTransformer,
    classifier="heads",
    set_classifier=_vit_classifier,
    archs={
        "vit_tiny": _vit("vit_tiny", vit_tiny, 8),
        "vit_b_16": _vit("vit_b_16", lambda size: tvm.vit_b_16(weights=None, image_size=size), 16),
    },
)
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
