"""Pretrained-weight loading and its one-line errors."""

from __future__ import annotations

import pytest
import torch

from dml.errors import DmlError
from dml.models import build_torchvision
from dml.models.backbones import load_imagenet, load_state_file


def test_state_file_round_trip(tmp_path):
    src = build_torchvision("resnet18", 2)
    path = tmp_path / "w.pt"
    torch.save({k: v for k, v in src.state_dict().items() if not k.startswith("fc.")}, path)
    dst = build_torchvision("resnet18", 2)
    load_state_file(dst, str(path))
    assert torch.equal(dst.conv1.weight, src.conv1.weight)


def test_state_file_errors(tmp_path):
    net = build_torchvision("resnet18", 2)
    with pytest.raises(DmlError, match="file not found"):
        load_state_file(net, str(tmp_path / "missing.pt"))
    path = tmp_path / "r50.pt"
    torch.save(build_torchvision("resnet50", 2).state_dict(), path)
    with pytest.raises(DmlError, match="does not match"):
        load_state_file(net, str(path))


def test_imagenet_offline_names_file_and_place(monkeypatch):
    from torchvision.models import ResNet18_Weights

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(type(ResNet18_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(DmlError) as err:
        load_imagenet(build_torchvision("resnet18", 2), "resnet18")
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and "checkpoints" in msg and "\n" not in msg


def test_unknown_arch_and_stride():
    with pytest.raises(DmlError, match="resnet18"):
        build_torchvision("vgg16", 2)
    with pytest.raises(DmlError, match="last_stride"):
        build_torchvision("resnet18", 3)
