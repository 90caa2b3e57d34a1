"""JPEG decoding speed for data too large to cache: PIL in loader processes against nvjpeg."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from dml.data.synthetic import class_attributes, render_image
from dml.data.transforms import MEAN, STD

SIZE = 224
BATCH = 40


def _write_one(task: tuple[Path, int, tuple[int, int]]) -> Path:
    folder, k, (width, height) = task
    attrs = class_attributes("target", 20)[k % 20]
    image, _ = render_image("target", attrs, max(width, height), np.random.default_rng(k))
    path = folder / f"{k:05d}.jpg"
    image.resize((width, height), Image.BICUBIC).save(path, quality=90)
    return path


def write_jpegs(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """`count` synthetic birds as JPEGs of size (width, height), quality 90 (CUB-like files)."""
    tasks = [(folder, k, size) for k in range(count)]
    with multiprocessing.get_context("fork").Pool() as pool:
        return pool.map(_write_one, tasks)


class _Files(Dataset):
    """The CUB recipe's train transform over JPEG files: decode, Resize((224, 224)) bicubic,
    flip, to-tensor, normalise."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.transform = T.Compose(
            [
                T.Resize((SIZE, SIZE), interpolation=InterpolationMode.BICUBIC),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(MEAN, STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB"))


def decode_loader(paths: list[Path], workers: int) -> float:
    """Images/s of a DataLoader with `workers` processes (timed from its first batch on, so
    the workers' start is left out)."""
    loader = DataLoader(_Files(paths), batch_size=BATCH, num_workers=workers)
    batches = iter(loader)
    first = next(batches)
    start = time.perf_counter()
    count = sum(len(batch) for batch in batches)
    seconds = time.perf_counter() - start
    return count / seconds if count else len(first) / max(seconds, 1e-9)


def decode_gpu(paths: list[Path], device: torch.device) -> float:
    """Images/s of nvjpeg decoding (torchvision.io.decode_jpeg on the device) plus the resize
    to 224 px on the device, batch by batch, with the files' bytes already in memory."""
    from torchvision.io import decode_jpeg, read_file
    from torchvision.transforms.v2 import functional as F

    data = [read_file(str(p)) for p in paths]
    decode_jpeg(data[:BATCH], device=device)  # warm-up: the decoder's handles and buffers
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    for i in range(0, len(data), BATCH):
        images = decode_jpeg(data[i : i + BATCH], device=device)
        resized = [F.resize(x, [SIZE, SIZE], antialias=True) for x in images]
        torch.stack(resized).float().div_(255)
    torch.cuda.synchronize(device)
    return len(data) / (time.perf_counter() - start)
