"""dataset.cache=ram: items bit-identical to decoding the files, which are read only once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from dml.data.base import DatasetConfig
from dml.data.cache import cache_in_ram, split_transform
from dml.data.records import ImageListDataset, Split
from dml.data.sampler import augment_seed
from dml.data.transforms import eval_transform, train_transform
from tests.data.fixtures import noise_jpegs

SIZES = [(30, 22), (25, 40), (33, 33), (48, 20), (21, 27)]  # (width, height), none square


def _images(folder: Path) -> Split:
    return Split(noise_jpegs(folder, SIZES), [1, 1, 2, 2, 3])


def _cfg(**overrides):
    base = {"image_size": 16, "resize_size": 20, "hflip": True, "color_jitter": 0.4}
    return OmegaConf.structured(DatasetConfig(name="t", root="unused", **{**base, **overrides}))


TRANSFORMS = {
    "train_resize": lambda: train_transform(_cfg()),
    "train_random_crop": lambda: train_transform(_cfg(random_resized_crop=True)),
    "eval_shorter": lambda: eval_transform(_cfg()),
    "eval_square": lambda: eval_transform(_cfg(eval_resize="square")),
}


def _items(dataset: ImageListDataset, epoch: int) -> list[torch.Tensor]:
    """Every item as the training loader asks for it at `epoch` (seeded by position)."""
    return [dataset[(i, augment_seed(0, epoch, i))][0] for i in range(len(dataset))]


@pytest.mark.parametrize("name", TRANSFORMS)
def test_ram_items_are_bit_identical_to_decoded_ones(tmp_path, name):
    """Bug: the cache changing what trains (a resize run before a random crop, a lossy or
    float copy, the augmentation drawn once at caching instead of per access)."""
    split = _images(tmp_path)
    plain = ImageListDataset(split, TRANSFORMS[name]())
    cached = cache_in_ram(ImageListDataset(split, TRANSFORMS[name]()))
    for epoch in (0, 1):
        for a, b in zip(_items(plain, epoch), _items(cached, epoch)):
            assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b)
    if name.startswith("train"):  # the augmentation still differs from epoch to epoch
        assert not torch.equal(_items(cached, 0)[0], _items(cached, 1)[0])


def test_ram_cache_reads_no_file_after_filling(tmp_path):
    """Bug: a cache that still opens the image files on every access (no decoding saved)."""
    split = _images(tmp_path)
    cached = cache_in_ram(ImageListDataset(split, train_transform(_cfg())))
    before = _items(cached, 1)
    for path in split.paths:
        path.unlink()
    assert all(torch.equal(a, b) for a, b in zip(before, _items(cached, 1)))


def test_ram_cache_holds_resized_uint8_images(tmp_path):
    """Bug: full-size decoded images (or float tensors) kept where the transform resizes
    first: memory grows with the files' resolution instead of the training size."""
    split = _images(tmp_path)
    train = cache_in_ram(ImageListDataset(split, train_transform(_cfg())))
    assert train.cache.nbytes == len(SIZES) * 16 * 16 * 3  # Resize((16, 16)) done once
    assert train.cache.buffer.dtype == torch.uint8
    test = cache_in_ram(ImageListDataset(split, eval_transform(_cfg())))
    assert test.cache.nbytes == len(SIZES) * 16 * 16 * 3  # resize 20 + center crop 16
    crop = cache_in_ram(ImageListDataset(split, train_transform(_cfg(random_resized_crop=True))))
    # the random crop is drawn from the decoded image: it must be kept whole
    assert crop.cache.nbytes == sum(w * h * 3 for w, h in SIZES)


def test_cache_filled_by_workers_matches_the_main_process(tmp_path):
    """Bug: images cached out of order (or lost) when worker processes decode them."""
    split = _images(tmp_path)
    one = cache_in_ram(ImageListDataset(split, eval_transform(_cfg())), workers=0)
    two = cache_in_ram(ImageListDataset(split, eval_transform(_cfg())), workers=2)
    assert one.cache.offsets == two.cache.offsets and one.cache.shapes == two.cache.shapes
    assert torch.equal(one.cache.buffer, two.cache.buffer)


def test_split_keeps_only_leading_deterministic_steps():
    """Bug: a random step (flip, jitter, random crop) cached once and frozen for every epoch."""
    prefix, rest = split_transform(train_transform(_cfg(random_resized_crop=False)))
    assert [type(t).__name__ for t in prefix.transforms] == ["Resize"]
    assert [type(t).__name__ for t in rest.transforms] == [
        "RandomHorizontalFlip",
        "ColorJitter",
        "ToTensor",
        "Normalize",
    ]
    prefix, rest = split_transform(train_transform(_cfg(random_resized_crop=True)))
    assert prefix.transforms == [] and type(rest.transforms[0]).__name__ == "RandomResizedCrop"


def test_caching_leaves_the_global_rng_alone(tmp_path):
    """Bug: filling the cache drew a loader seed from torch's global RNG, so a run with
    dataset.cache=ram initialised its loss and head from other random numbers than the same
    run without it (and a first run, which caches the source images to pre-train, differed
    from every later one)."""
    split = _images(tmp_path)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    cache_in_ram(ImageListDataset(split, train_transform(_cfg())), workers=0)
    assert torch.equal(torch.rand(3), expected)
