"""Backbones from torchvision, their pretrained weights, and the unit-structured wrapper."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

from dml.errors import DmlError
from dml.models.units import UnitMap, family_of, family_of_arch


class Backbone(nn.Module):
    """Stem followed by a flat list of units; pruning keeps a prefix of the units."""

    def __init__(self, unit_map: UnitMap) -> None:
        super().__init__()
        self.stem = unit_map.stem
        self.units = nn.ModuleList(unit_map.units)
        self.main_path = list(unit_map.main_path)
        self.neck = unit_map.neck
        self.tokens = unit_map.tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for unit in self.units:
            x = unit(x)
        return self.neck(x)

    def prune(self, keep: int) -> None:
        """Remove every unit after the first `keep` (the modules and their parameters)."""
        self.units = nn.ModuleList(list(self.units)[:keep])
        self.main_path = self.main_path[:keep]

    @property
    def num_units(self) -> int:
        """Number of units in play."""
        return len(self.units)

    @property
    def out_channels(self) -> int:
        """Channels (ViT: width) of the last unit's output: its last main-path weight's rows."""
        last = self.units[-1].get_parameter(self.main_path[-1][-1])
        return int(last.shape[0])

    def main_path_params(self, k: int) -> list[nn.Parameter]:
        """The parameters whose change defines unit k's weight variation (0-based k)."""
        return [self.units[k].get_parameter(n) for n in self.main_path[k]]


def build_torchvision(arch: str, last_stride: int, image_size: int = 224) -> nn.Module:
    """A randomly initialised torchvision model of its family's constructor for arch;
    last_stride sets a ResNet's layer4 first-block stride; image_size fixes a ViT's input
    size (its position embedding)."""
    if last_stride not in (1, 2):
        raise DmlError(f"model.last_stride={last_stride}: expected 1 or 2")
    return family_of_arch(arch).archs[arch](image_size, last_stride)


def imagenet_weights(arch: str, weights: str = "IMAGENET1K_V1") -> tvm.WeightsEnum:
    """torchvision's ImageNet weights entry named `weights` (e.g. IMAGENET1K_V2) for arch."""
    family_of_arch(arch)  # an unknown arch is a one-line error
    try:
        enum = tvm.get_model_weights(arch)
    except ValueError:  # an architecture of ours (vit_tiny): torchvision has no weights
        raise DmlError(
            f"model.pretrained=imagenet: torchvision has no ImageNet weights for {arch}; "
            "expected model.pretrained=synthetic, none or a state_dict path"
        ) from None
    # iterating the enum skips aliases such as DEFAULT, whose file would change across releases
    names = [member.name for member in enum]
    if weights not in names:
        raise DmlError(f"model.weights='{weights}' for {arch}: expected one of {names}")
    return enum[weights]


def load_imagenet(model: nn.Module, arch: str, weights: str = "IMAGENET1K_V1") -> None:
    """Load torchvision's ImageNet weights from the torch hub cache (downloads when online)."""
    entry = imagenet_weights(arch, weights)
    url = entry.url
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    try:
        state = entry.get_state_dict(progress=False, check_hash=False)
    except Exception as exc:  # offline machines fail with URLError/OSError of many kinds
        raise DmlError(
            f"ImageNet weights {weights} for {arch} unavailable ({type(exc).__name__}); "
            f"download {url} and put it at {target}"
        ) from None
    model.load_state_dict(state)


def load_state_file(model: nn.Module, path: str) -> None:
    """Load a torchvision-keyed state_dict file (classifier keys, 'fc.*' or a ViT's 'heads.*',
    may differ or be absent)."""
    file = Path(path)
    if not file.is_file():
        raise DmlError(
            f"model.pretrained={path}: file not found; expected none, imagenet, synthetic "
            "or a path to a state_dict saved with torch.save"
        )
    expected = "expected a state_dict (a dict of tensors) saved with torch.save"
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, a damaged one, or pickled objects
        detail = type(exc).__name__  # torch's own messages run to paragraphs
        raise DmlError(f"model.pretrained={path}: cannot be read ({detail}); {expected}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        what = "a dict with non-tensor values" if isinstance(state, dict) else type(state).__name__
        raise DmlError(f"model.pretrained={path} holds {what}; {expected}")
    head = classifier_prefix(model)
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when strict=False
        detail = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), "")
        raise DmlError(f"{path} does not match {type(model).__name__}: {detail}") from None
    missing = [k for k in missing if not k.startswith(head)]
    if missing or unexpected:
        raise DmlError(
            f"{path} does not match {type(model).__name__}: "
            f"{len(missing)} missing keys (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )


def classifier_prefix(model: nn.Module) -> str:
    """The state_dict prefix of a torchvision model's ImageNet classifier."""
    return family_of(model).classifier + "."


def set_classifier(model: nn.Module, num_classes: int) -> None:
    """Replace the model's classifier by a fresh linear layer to num_classes (pre-training)."""
    family_of(model).set_classifier(model, num_classes)


def make_backbone(model: nn.Module) -> Backbone:
    """Wrap a torchvision model into a unit-structured Backbone via its family's mapping."""
    return Backbone(family_of(model).map_units(model))
