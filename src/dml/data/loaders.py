"""The loaders of a run: worker counts, shared options, the device pipeline, and shutdown.

Loader processes that persist across epochs (and the pin-memory thread of a CUDA run) are
ended explicitly when a run ends, whatever the ending: left to the interpreter's exit
handlers, they held every CUDA process for 30-50 s after its last line (each worker is joined
with a timeout; pytorch/pytorch#81794), and a multirun's finished jobs kept theirs alive.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from dml.data.cache import cache_in_ram
from dml.data.device import AugmentParams, AugmentPlan, DeviceBatches, DeviceImages
from dml.data.records import ImageListDataset, RetrievalData, Split
from dml.data.sampler import EpochBatchSampler, SeededBatches
from dml.data.transforms import eval_transform, train_transform
from dml.training import distributed

Loader = DataLoader | DeviceBatches


def loader_workers(requested: int | None, device: torch.device | None = None) -> int:
    """dataset.num_workers, or with null one loader process per core but one, so the main
    process keeps a core: at most 8 for a CPU run, whose training threads need the cores, all
    of them for a GPU run (decoding CUB-sized JPEGs on an H200 machine: 1,198 images/s with 8
    processes, 2,375 with 15, against 1,858 for the fp32 training step), and none on 1-2
    cores, where loading in the main process was faster (3 twin epochs: 66 s without a
    worker, 70 s with one); never more workers than cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if requested is None:
        if cores <= 2:
            return 0
        return cores - 1 if device is not None and device.type == "cuda" else min(8, cores - 1)
    return min(requested, cores)


def loader_options(workers: int, device: torch.device, seed: int) -> dict:
    """DataLoader keywords shared by the training and evaluation loaders."""
    return {
        "num_workers": workers,
        "pin_memory": device.type == "cuda",  # page-locked batches copy to the GPU async
        # workers live across epochs instead of being started again for every pass
        "persistent_workers": workers > 0,
        # a loader draws its workers' base seed at each new iterator; from the global RNG that
        # would shift dropout by whether workers persist (the epoch's first trial or a re-run)
        "generator": torch.Generator().manual_seed(seed),
    }


def close_loader(loader: Loader | None) -> None:
    """End a loader's worker processes and pin-memory thread now (no-op without them)."""
    if isinstance(loader, DeviceBatches):
        loader = loader.loader
    iterator = getattr(loader, "_iterator", None)  # persistent workers keep their iterator here
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    if loader is not None and hasattr(loader, "_iterator"):
        loader._iterator = None


def close_loaders(loaders: Iterable[Loader | None]) -> None:
    """close_loader for each."""
    for loader in loaders:
        close_loader(loader)


@dataclass
class Loaders:
    """A run's training set, its batch sampler and loader, and the evaluation loaders."""

    train_set: ImageListDataset
    sampler: EpochBatchSampler
    train: Loader
    evals: dict[str, Loader] = field(default_factory=dict)
    on_device: bool = False

    def close(self) -> None:
        """End every loader's workers (see close_loader)."""
        close_loaders([self.train, *self.evals.values()])


@dataclass(frozen=True)
class LoaderSpec:
    """What the loaders need from the config: dataset, trainer and eval groups and the seed."""

    dataset: object  # the dataset group
    batch_size: int
    samples_per_class: int
    eval_batch_size: int
    seed: int
    progress: bool = True


def build_loaders(
    spec: LoaderSpec,
    data: RetrievalData,
    val: Split | None,
    device: torch.device,
    on_device: bool,
    eval_classes: dict[str, dict[int, int]] | None = None,
) -> Loaders:
    """Training loader (epoch-seeded batches) and evaluation loaders {"test", "gallery"?,
    "val"?}; with on_device the cached images are augmented on the device (dml.data.device)."""
    workers = loader_workers(spec.dataset.num_workers, device)
    train = _dataset(spec, data.train, train_transform(spec.dataset), workers, "train")
    # trainer.batch_size is the global batch: under torchrun each rank takes its share
    sampler = EpochBatchSampler(
        train.targets,
        spec.batch_size,
        spec.samples_per_class,
        spec.seed,
        rank=distributed.rank(),
        world_size=distributed.world_size(),
    )
    options = loader_options(workers, device, spec.seed)
    batches = SeededBatches(sampler)
    if on_device:
        plan = AugmentPlan(train.transform)
        loader = DataLoader(AugmentParams(train, plan), batch_sampler=batches, **options)
        train_loader: Loader = DeviceBatches(loader, DeviceImages(train.cache, device), plan)
    else:
        train_loader = DataLoader(train, batch_sampler=batches, **options)
    evals = {"test": data.test} | ({"gallery": data.gallery} if data.gallery else {})
    evals |= {"val": val} if val is not None else {}
    classes = eval_classes or {}
    eval_loaders = {
        name: _eval_loader(spec, split, workers, name, classes.get(name), device, on_device)
        for name, split in evals.items()
    }
    return Loaders(train, sampler, train_loader, eval_loaders, on_device)


def _eval_loader(
    spec: LoaderSpec,
    split: Split,
    workers: int,
    name: str,
    classes: dict[int, int] | None,
    device: torch.device,
    on_device: bool,
) -> Loader:
    dataset = _dataset(spec, split, eval_transform(spec.dataset), workers, name, classes)
    if not on_device:
        options = loader_options(workers, device, spec.seed)
        return DataLoader(_shard(dataset), batch_size=spec.eval_batch_size, **options)
    # nothing random is left to draw: the main process hands out indices, the device does
    # the rest, so no loader process is needed
    plan = AugmentPlan(dataset.transform)
    options = loader_options(0, device, spec.seed)
    params = _shard(AugmentParams(dataset, plan))
    loader = DataLoader(params, batch_size=spec.eval_batch_size, **options)
    return DeviceBatches(loader, DeviceImages(dataset.cache, device), plan)


def _shard(dataset: Dataset) -> Dataset:
    """Under torchrun, this rank's contiguous share of an evaluation set (no padding)."""
    if not distributed.active():
        return dataset
    return Subset(dataset, list(distributed.shard(len(dataset))))


def _dataset(
    spec: LoaderSpec, split: Split, transform, workers: int, name: str, classes=None
) -> ImageListDataset:
    """A split's dataset; under dataset.cache=ram its images decoded into memory now."""
    dataset = ImageListDataset(split, transform, classes)
    if spec.dataset.cache == "ram":
        cache_in_ram(dataset, workers, spec.progress, f"{name} images")
        mb = dataset.cache.nbytes / 2**20
        tqdm.write(f"dataset.cache=ram: {len(split)} {name} images in {mb:.1f} MiB")
    return dataset
