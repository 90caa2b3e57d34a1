"""ImageListDataset: keyed augmentation is reproducible and leaves torch's RNG alone."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms as T

from dml.data.records import ImageListDataset, Split


def _dataset(tmp_path: Path) -> ImageListDataset:
    path = tmp_path / "a.png"
    pixels = torch.arange(16 * 16 * 3, dtype=torch.uint8).reshape(16, 16, 3).numpy()
    Image.fromarray(pixels).save(path)
    crop = T.Compose([T.RandomResizedCrop(8, scale=(0.2, 1.0)), T.PILToTensor()])
    return ImageListDataset(Split([path], [7]), crop)


def test_same_seed_same_crop_other_seed_differs(tmp_path: Path) -> None:
    # Bug caught: the seed being ignored, so a crop depends on which worker loads it.
    data = _dataset(tmp_path)
    a, label = data[(0, 123)]
    assert label == 0
    torch.manual_seed(999)  # the global stream must not matter
    assert torch.equal(data[(0, 123)][0], a)
    assert not all(torch.equal(data[(0, s)][0], a) for s in range(1, 6))


def test_keyed_item_does_not_advance_the_global_rng(tmp_path: Path) -> None:
    # Bug caught: seeding the global RNG in the main process (num_workers=0), which would
    # make model init and dropout depend on how many images were loaded.
    data = _dataset(tmp_path)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    data[(0, 1)]
    assert torch.equal(torch.rand(3), expected)
