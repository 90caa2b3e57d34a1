"""dataset.cache=ram: each image decoded once and kept in memory as uint8.

A transform's leading deterministic steps (Resize, CenterCrop) run once per image, here;
their output is kept and the rest (random crop, flip, jitter, ToTensor, Normalize) runs on
every access, on a PIL image rebuilt from those bytes. The same pixels go in and the same
random numbers are drawn, so an item is bit-identical to one decoded from its file.

The cache is filled in the main process before the loaders start their workers: forked
workers share its one buffer (never written again) instead of each filling a copy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from tqdm import tqdm

from dml.data.records import ImageListDataset

CACHES = ("none", "ram")
# PIL -> PIL steps that draw no random numbers: running them once gives what every access would
_DETERMINISTIC = (T.Resize, T.CenterCrop)


def split_transform(transform: Callable | None) -> tuple[T.Compose, Callable | None]:
    """(the leading deterministic steps, the rest) of a transform; a non-Compose is all rest."""
    if transform is None:
        return T.Compose([]), None
    steps = list(transform.transforms) if isinstance(transform, T.Compose) else [transform]
    k = 0
    while k < len(steps) and isinstance(steps[k], _DETERMINISTIC):
        k += 1
    return T.Compose(steps[:k]), T.Compose(steps[k:])


class RamCache:
    """uint8 HxWx3 images packed in one flat tensor, read back as PIL images."""

    def __init__(self, images: list[torch.Tensor]) -> None:
        self.shapes = [tuple(t.shape) for t in images]
        self.offsets = np.cumsum([0, *(t.numel() for t in images)]).tolist()
        # one buffer, not one tensor per image: forked workers share it page for page
        flat = [t.reshape(-1) for t in images]
        self.buffer = torch.cat(flat) if flat else torch.empty(0, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.shapes)

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return self.buffer.numel()

    def image(self, index: int) -> Image.Image:
        """The cached RGB image of record `index` (a fresh PIL copy)."""
        flat = self.buffer[self.offsets[index] : self.offsets[index + 1]]
        return Image.fromarray(flat.numpy().reshape(self.shapes[index]))


class _Prefixed(Dataset):
    """Records decoded and passed through the deterministic steps, as uint8 HxWx3 tensors."""

    def __init__(self, dataset: ImageListDataset, prefix: T.Compose) -> None:
        self.dataset, self.prefix = dataset, prefix

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.prefix(self.dataset.decode(index))))


def cache_in_ram(
    dataset: ImageListDataset, workers: int = 0, progress: bool = False, name: str = "images"
) -> ImageListDataset:
    """The dataset, now reading its images from RAM; decoded here by `workers` processes."""
    prefix, rest = split_transform(dataset.transform)
    # batch_size=None: one image per item, any size (random_resized_crop keeps full images);
    # a generator of its own: a new loader iterator draws its workers' base seed from it,
    # and from torch's global RNG without one, which would shift every later draw of the run
    # (the loss's and head's initial weights) by whether the data was cached
    loader = DataLoader(
        _Prefixed(dataset, prefix),
        batch_size=None,
        num_workers=workers,
        generator=torch.Generator(),
    )
    images = list(tqdm(loader, desc=f"caching {name}", leave=False, disable=not progress))
    dataset.cache, dataset.transform = RamCache(images), rest
    return dataset
