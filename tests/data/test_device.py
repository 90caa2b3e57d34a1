"""dataset.augment_on=device, run on the CPU as a stand-in device: the same parameters as the
CPU path for the same (seed, epoch, position), the same pixels where the arithmetic is the
same, the same batches for a re-run, and a whole run equal to the CPU path's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader
from torchvision import transforms as T

from dml.data.base import DatasetConfig
from dml.data.cache import cache_in_ram
from dml.data.device import (
    AugmentParams,
    AugmentPlan,
    DeviceBatches,
    DeviceImages,
    augments_on_device,
)
from dml.data.records import ImageListDataset, Split
from dml.data.sampler import EpochBatchSampler, SeededBatches, augment_seed
from dml.data.transforms import eval_transform, train_transform
from dml.errors import DmlError
from dml.run import run
from tests.conftest import TINY_OVERRIDES, compose_cfg
from tests.data.fixtures import noise_jpegs

CPU = torch.device("cpu")
SIZES = [(30, 22), (25, 40), (33, 33), (48, 20), (21, 27), (40, 40)]  # (width, height)


def _split(folder: Path) -> Split:
    return Split(noise_jpegs(folder, SIZES), [1, 1, 2, 2, 3, 3])


def _cfg(**overrides):
    base = {"image_size": 16, "resize_size": 20, "hflip": True}
    return OmegaConf.structured(DatasetConfig(name="t", root="unused", **{**base, **overrides}))


def _cached(split: Split, transform) -> ImageListDataset:
    return cache_in_ram(ImageListDataset(split, transform))


def _device_batch(dataset: ImageListDataset, items: list) -> tuple[torch.Tensor, dict]:
    """The device path's images and parameters for these (index, seed) items."""
    plan = AugmentPlan(dataset.transform)
    params_set = AugmentParams(dataset, plan)
    loader = DataLoader(params_set, batch_size=len(items))
    indices, params, _ = loader.collate_fn([params_set[item] for item in items])
    batches = DeviceBatches(loader, DeviceImages(dataset.cache, CPU), plan)
    return batches.images_of(indices, params), params


def _keys(epoch: int) -> list[tuple[int, int]]:
    return [(i, augment_seed(7, epoch, i)) for i in range(len(SIZES))]


@pytest.mark.parametrize("epoch", [0, 3])
def test_resize_and_flip_are_the_cpu_paths_pixels_to_the_bit(tmp_path, epoch):
    """Bug: the device path drawing other flips than the CPU path for the same (seed, epoch,
    position) key, or normalising with other arithmetic (the paper recipe's train transform:
    a cached resize, then flip, to-tensor and normalisation)."""
    cached = _cached(_split(tmp_path), train_transform(_cfg()))
    want = torch.stack([cached[item][0] for item in _keys(epoch)])
    got, params = _device_batch(cached, _keys(epoch))
    assert torch.equal(got, want)
    assert 0 < int(params["flip"].sum()) < len(SIZES)  # both outcomes occur: a real check


def test_random_crop_and_jitter_draw_the_cpu_paths_parameters(tmp_path, monkeypatch):
    """Bug: the device path's random-resized-crop boxes or colour-jitter factors drawn from
    another RNG state than the CPU path's (a re-run trial would still match itself, but the
    two paths would train on different crops)."""
    cfg = _cfg(random_resized_crop=True, color_jitter=0.4)
    cached = _cached(_split(tmp_path), train_transform(cfg))
    seen: dict[str, list] = {"crop": [], "jitter": []}
    crop_params, jitter_params = T.RandomResizedCrop.get_params, T.ColorJitter.get_params

    def spy_crop(img, scale, ratio):
        box = crop_params(img, scale, ratio)
        seen["crop"].append(list(box))
        return box

    def spy_jitter(*args):
        out = jitter_params(*args)
        seen["jitter"].append((out[0].tolist(), list(out[1:])))
        return out

    monkeypatch.setattr(T.RandomResizedCrop, "get_params", staticmethod(spy_crop))
    monkeypatch.setattr(T.ColorJitter, "get_params", staticmethod(spy_jitter))
    cpu_images = torch.stack([cached[item][0] for item in _keys(1)])
    cpu_seen = {k: list(v) for k, v in seen.items()}
    got, params = _device_batch(cached, _keys(1))
    assert params["crop"].tolist() == cpu_seen["crop"]
    orders = params["jitter_order"].tolist()
    assert orders == [order for order, _ in cpu_seen["jitter"]]
    # brightness, contrast, saturation (hue is off, nan, in dml's transforms): float32 draws
    cpu_factors = torch.tensor([f[:3] for _, f in cpu_seen["jitter"]], dtype=torch.float32)
    assert torch.equal(params["jitter"][:, :3], cpu_factors)
    assert torch.isnan(params["jitter"][:, 3]).all()
    # the pixels: torch's antialiased resize and tensor jitter instead of PIL's, so close only
    assert got.shape == cpu_images.shape == (len(SIZES), 3, 16, 16)
    assert (got - cpu_images).abs().mean() < 0.1  # normalised units (1/255 is ~0.017)


def test_a_rerun_sees_the_same_batches_and_the_next_epoch_others(tmp_path):
    """Bug: device augmentation drawn from a stream that moves on (a re-run AutoLR trial would
    train on other crops than the trial it repeats), or frozen across epochs."""
    cached = _cached(_split(tmp_path), train_transform(_cfg(random_resized_crop=True)))
    sampler = EpochBatchSampler(cached.targets, batch_size=3, seed=5)
    plan = AugmentPlan(cached.transform)
    loader = DataLoader(AugmentParams(cached, plan), batch_sampler=SeededBatches(sampler))
    batches = DeviceBatches(loader, DeviceImages(cached.cache, CPU), plan)

    def epoch(e: int) -> list[torch.Tensor]:
        sampler.set_epoch(e)
        return [images for images, _ in batches]

    first, again, other = epoch(2), epoch(2), epoch(3)
    assert len(first) == 2 and all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_eval_batches_equal_the_cpu_loaders(tmp_path):
    """Bug: the evaluation images on the device differing from the CPU path's (the resize and
    crop are cached; only to-tensor and normalisation are left to the device)."""
    split = _split(tmp_path)
    for resize in ("shorter", "square"):
        cached = _cached(split, eval_transform(_cfg(eval_resize=resize)))
        want = torch.stack([cached[i][0] for i in range(len(SIZES))])
        got, params = _device_batch(cached, list(range(len(SIZES))))
        assert params == {} and torch.equal(got, want)


def test_augment_on_resolves_auto_to_the_device_only_for_cached_cuda_runs():
    """Bug: auto moving uncached data (nothing to gather on the device) or CPU runs to the
    device path, or augment_on=device accepted without the cache it needs."""
    cuda = torch.device("cuda")
    assert augments_on_device("auto", "ram", cuda) is True
    assert augments_on_device("auto", "none", cuda) is False
    assert augments_on_device("auto", "ram", CPU) is False
    assert augments_on_device("cpu", "ram", cuda) is False
    assert augments_on_device("device", "ram", CPU) is True
    with pytest.raises(DmlError) as err:
        augments_on_device("device", "none", CPU)
    assert str(err.value) == (
        "dataset.augment_on=device needs dataset.cache=ram (the images must be decoded once "
        "to live on the device); set dataset.cache=ram or dataset.augment_on=cpu"
    )


def test_a_run_augmented_on_the_device_equals_the_cpu_paths_run(tmp_path):
    """Bug: the device path changing what a run computes: other batches, labels, flips or
    evaluation images would change the losses and the recalls."""
    histories = []
    for where in ("cpu", "device"):
        cfg = compose_cfg(
            [*TINY_OVERRIDES, f"data_dir={tmp_path / 'data'}", "lr_policy=constant"]
            + ["trainer.epochs=2", "dataset.cache=ram", f"dataset.augment_on={where}"]
        )
        assert run(cfg, tmp_path / where) == 0
        saved = json.loads((tmp_path / where / "results.json").read_text())
        histories.append([{k: v for k, v in row.items() if k != "lr"} for row in saved["history"]])
    cpu, device = histories
    assert device == cpu and len(cpu) == 2 and cpu[0]["loss"] > 0
