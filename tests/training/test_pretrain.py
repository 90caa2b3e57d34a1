"""dml.training.pretrain: the synthetic source pre-training, on the CPU path and on the device
path (run here on the CPU as a stand-in device)."""

from __future__ import annotations

import multiprocessing

import torch
from omegaconf import OmegaConf

from dml.config import PretrainConfig
from dml.data.synthetic_set import SyntheticDatasetConfig
from dml.models.backbones import build_torchvision, classifier_prefix
from dml.training.pretrain import ensure_pretrained, pretrain

TINY_SOURCE = PretrainConfig(num_classes=4, images_per_class=6, epochs=1, batch_size=8)


def _dataset(augment_on: str):
    return OmegaConf.structured(
        SyntheticDatasetConfig(
            name="synthetic",
            root="",
            image_size=32,
            resize_size=32,
            generated_size=32,
            augment_on=augment_on,
        )
    )


def test_the_device_path_trains_every_weight_and_returns_cpu_tensors(tmp_path):
    """Bug: pre-training on a GPU returning CUDA tensors (the cache file then loads only on
    a GPU), training nothing (weights at their init), or leaving its loader workers alive."""
    cfg = OmegaConf.structured(TINY_SOURCE)
    state = pretrain(tmp_path, "resnet18", _dataset("device"), cfg, False, torch.device("cpu"))
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        init = build_torchvision("resnet18", 2, 32).state_dict()
    head = classifier_prefix(build_torchvision("resnet18", 2, 32))
    assert sorted(state) == sorted(k for k in init if not k.startswith(head))
    assert all(t.device.type == "cpu" for t in state.values())
    assert not torch.equal(state["conv1.weight"], init["conv1.weight"])
    assert not torch.equal(state["layer4.1.conv2.weight"], init["layer4.1.conv2.weight"])
    assert multiprocessing.active_children() == []


def test_the_cpu_path_is_unchanged_by_the_device_option(tmp_path):
    """Bug: the CPU pre-training (the synthetic twin's source model, cached and compared across
    sessions) changed by the device path's arrival: auto on the CPU must be the CPU path."""
    cfg = OmegaConf.structured(TINY_SOURCE)
    cpu = torch.device("cpu")
    auto = pretrain(tmp_path, "resnet18", _dataset("auto"), cfg, False, cpu)
    plain = pretrain(tmp_path, "resnet18", _dataset("cpu"), cfg, False, cpu)
    device = pretrain(tmp_path, "resnet18", _dataset("device"), cfg, False, cpu)
    assert all(torch.equal(auto[k], plain[k]) for k in auto)
    assert not torch.equal(auto["conv1.weight"], device["conv1.weight"])  # another order


def test_ensure_pretrained_caches_the_weights_once(tmp_path):
    """Bug: pre-training again on every run (minutes each) instead of reading the cache file."""
    cfg = OmegaConf.structured(TINY_SOURCE)
    path = ensure_pretrained(tmp_path, "resnet18", _dataset("auto"), cfg, False)
    stamp = path.stat().st_mtime_ns
    assert ensure_pretrained(tmp_path, "resnet18", _dataset("auto"), cfg, False) == path
    assert path.stat().st_mtime_ns == stamp
