"""Pretrained-weight loading and its one-line errors."""

from __future__ import annotations

import pytest
import torch

from dml.errors import DmlError
from dml.models import build_torchvision
from dml.models.backbones import imagenet_weights, load_imagenet, load_state_file


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """torch.hub pointed at an empty tmp cache, with every download failing as offline."""

    def no_network(url, dst, *args, **kwargs):
        raise OSError(f"no network for {url}")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "hub" / "checkpoints"


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


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"hello, not a checkpoint", "cannot be read ("),
        (torch.zeros(3), "holds Tensor;"),
        ({"conv1.weight": 1.0}, "holds a dict with non-tensor values;"),
    ],
)
def test_pretrained_file_that_is_not_a_state_dict(tmp_path, content, what):
    """Catches an unpickling traceback (or .items() on a tensor) for model.pretrained=<file>
    pointing at something other than a state_dict: one line naming the file and what is wanted."""
    path = tmp_path / "weights.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(DmlError) as err:
        load_state_file(build_torchvision("resnet18", 2), str(path))
    line = str(err.value)
    assert line.startswith(f"model.pretrained={path}") and what in line and "\n" not in line
    assert line.endswith("expected a state_dict (a dict of tensors) saved with torch.save")


def test_imagenet_offline_names_file_and_place(monkeypatch):
    from torchvision.models import ResNet18_Weights

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(type(ResNet18_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(DmlError) as err:
        load_imagenet(build_torchvision("resnet18", 2), "resnet18")
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and "checkpoints" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("arch", "weights", "file"),
    [
        ("resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth"),
        ("resnet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth"),
        ("resnet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth"),
    ],
)
def test_offline_error_names_the_selected_weights_file(offline_hub, arch, weights, file):
    """Bug: model.weights ignored (resnet50 pinned to V2, as before), so the V1 file is never used.

    The file names are torchvision's published checkpoint names for each weights entry.
    """
    with pytest.raises(DmlError) as err:
        load_imagenet(build_torchvision(arch, 2), arch, weights)
    msg = str(err.value)
    assert f"put it at {offline_hub / file}" in msg
    assert weights in msg and "\n" not in msg


def test_imagenet_loads_from_the_hub_cache_without_network(offline_hub):
    """Bug: a weights file already in the hub cache not used (a download attempted offline)."""
    src = build_torchvision("resnet18", 2)
    offline_hub.mkdir(parents=True)
    torch.save(src.state_dict(), offline_hub / "resnet18-f37072fd.pth")
    dst = build_torchvision("resnet18", 2)
    load_imagenet(dst, "resnet18", "IMAGENET1K_V1")
    assert torch.equal(dst.layer4[1].conv2.weight, src.layer4[1].conv2.weight)


def test_unknown_weights_name_lists_the_choices():
    """Bug: a misspelt or unavailable weights name failing with a bare KeyError.

    torchvision publishes only IMAGENET1K_V1 for resnet18; DEFAULT is an alias, not a choice.
    """
    with pytest.raises(DmlError) as err:
        imagenet_weights("resnet18", "IMAGENET1K_V2")
    assert "model.weights" in str(err.value) and "['IMAGENET1K_V1']" in str(err.value)
    with pytest.raises(DmlError, match=r"\['IMAGENET1K_V1', 'IMAGENET1K_V2'\]"):
        imagenet_weights("resnet50", "DEFAULT")
    with pytest.raises(DmlError, match="model.arch"):
        imagenet_weights("vgg16", "IMAGENET1K_V1")


def test_unknown_arch_and_stride():
    with pytest.raises(DmlError, match="resnet18"):
        build_torchvision("vgg16", 2)
    with pytest.raises(DmlError, match="last_stride"):
        build_torchvision("resnet18", 3)
