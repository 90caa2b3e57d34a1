"""Plain (path, label) records shared by every dataset loader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from dml.errors import DmlError


@dataclass(frozen=True)
class Split:
    """Image paths and their integer class labels (original class ids, not remapped)."""

    paths: list[Path]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        """Number of distinct labels in the split."""
        return len(set(self.labels))


@dataclass(frozen=True)
class RetrievalData:
    """Train split (seen classes) and test split (unseen classes) of a retrieval benchmark.

    gallery: when set (In-Shop), `test` holds the queries, searched against `gallery` instead
    of against themselves; None (every other dataset) means each test image queries the rest
    of `test`.
    """

    train: Split
    test: Split
    gallery: Split | None = None


class ImageListDataset(Dataset):
    """Loads RGB images from a Split; labels are remapped to 0..C-1 in sorted order."""

    def __init__(
        self,
        split: Split,
        transform: Callable | None = None,
        class_to_index: dict[int, int] | None = None,
    ) -> None:
        """class_to_index: another split's mapping (classification scores test labels with the
        classifier's training indices); by default this split's sorted classes."""
        self.split = split
        self.transform = transform
        if class_to_index is None:
            class_to_index = {c: i for i, c in enumerate(sorted(set(split.labels)))}
        unknown = sorted(set(split.labels) - set(class_to_index))
        if unknown:
            raise DmlError(
                f"{len(unknown)} class(es) of this split are not among the training classes "
                f"(first: {unknown[0]}); classification needs every test class in training"
            )
        self.class_to_index = dict(class_to_index)
        self.targets = [self.class_to_index[c] for c in split.labels]
        # dml.data.cache.RamCache under dataset.cache=ram: images read from memory, not files
        self.cache = None

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, item: int | tuple[int, int]):
        """Image and label; an (index, seed) pair draws the augmentation from that seed."""
        index, seed = item if isinstance(item, tuple) else (item, None)
        image = self.decode(index) if self.cache is None else self.cache.image(index)
        if self.transform is not None:
            image = self._transform(image, seed)
        return image, self.targets[index]

    def decode(self, index: int) -> Image.Image:
        """The RGB image of record `index`, read from its file."""
        path = self.split.paths[index]
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise DmlError(f"cannot read image {path}: {exc}") from None

    def _transform(self, image: Image.Image, seed: int | None):
        if seed is None:
            return self.transform(image)
        # torchvision's random transforms draw from torch's global RNG: fork it so the
        # caller's stream (model init, dropout) is untouched, whatever the worker count
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image)


def split_by_class(split: Split, train_classes: set[int]) -> RetrievalData:
    """Split records by class id: ids in train_classes go to train, all others to test."""
    train = [(p, y) for p, y in zip(split.paths, split.labels) if y in train_classes]
    test = [(p, y) for p, y in zip(split.paths, split.labels) if y not in train_classes]
    return RetrievalData(
        train=Split([p for p, _ in train], [y for _, y in train]),
        test=Split([p for p, _ in test], [y for _, y in test]),
    )
