"""Synthetic source-domain pre-training: the offline stand-in for ImageNet weights (cached)."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
from filelock import FileLock
from torch.utils.data import DataLoader
from tqdm import tqdm

from dml.data.cache import cache_in_ram
from dml.data.device import (
    AugmentParams,
    AugmentPlan,
    DeviceBatches,
    DeviceImages,
    augments_on_device,
)
from dml.data.loaders import close_loader, loader_options, loader_workers
from dml.data.records import ImageListDataset
from dml.data.sampler import EpochBatchSampler, SeededBatches
from dml.data.synthetic import FORMAT_VERSION as SYNTHETIC_VERSION
from dml.data.transforms import train_transform
from dml.errors import DmlError
from dml.training.checkpoint import save_checkpoint
from dml.training.loop import autocast_dtype

PRETRAIN_VERSION = 2


def pretrained_path(data_dir: Path, arch: str, dataset_cfg, cfg) -> Path:
    """Cache file for one (architecture, image size, pre-training recipe)."""
    name = (
        f"{arch}_img{dataset_cfg.image_size}_gen{dataset_cfg.generated_size}_c{cfg.num_classes}"
        f"_n{cfg.images_per_class}_e{cfg.epochs}_lr{cfg.lr:g}_seed{cfg.seed}"
        f"_v{PRETRAIN_VERSION}.{SYNTHETIC_VERSION}.pt"
    )
    return data_dir / "pretrained" / name


def ensure_pretrained(
    data_dir: Path,
    arch: str,
    dataset_cfg,
    cfg,
    progress: bool = True,
    device: torch.device | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
) -> Path:
    """Path of synthetic-pretrained weights, pre-training (once) when absent."""
    path = pretrained_path(data_dir, arch, dataset_cfg, cfg)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(f".{path.name}.lock")):  # one pre-training per cache file
        if not path.is_file():
            device = device or torch.device("cpu")
            tqdm.write(
                f"pre-training {arch} on synthetic source classes on {device.type} (first use; "
                f"cached at {path})"
            )
            state = pretrain(
                data_dir, arch, dataset_cfg, cfg, progress, device, precision, channels_last
            )
            save_checkpoint(path, state)
    return path


def pretrain(
    data_dir: Path,
    arch: str,
    dataset_cfg,
    cfg,
    progress: bool = True,
    device: torch.device | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
) -> dict:
    """Train a torchvision classifier on the source domain; its state_dict without classifier.

    On a GPU (or with dataset.augment_on=device) the source images are cached and augmented on
    the device, as a run's are (dml.data.device), at the run's trainer.precision and
    channels_last; on the CPU they are decoded by the loader each epoch.
    """
    from dml.data.cub import read_cub_layout
    from dml.data.synthetic import ensure_synthetic
    from dml.models.backbones import build_torchvision, classifier_prefix, set_classifier

    device = device or torch.device("cpu")
    root = ensure_synthetic(
        data_dir / "synthetic" / f"source_c{cfg.num_classes}_n{cfg.images_per_class}"
        f"_s{dataset_cfg.generated_size}_seed{cfg.seed}",
        domain="source",
        num_classes=cfg.num_classes,
        images_per_class=cfg.images_per_class,
        image_size=dataset_cfg.generated_size,
        seed=cfg.seed,
    )
    data = ImageListDataset(read_cub_layout(root), train_transform(dataset_cfg))
    if len(data) < cfg.batch_size:
        raise DmlError(
            f"pretrain.batch_size={cfg.batch_size} exceeds the {len(data)} source images "
            "(pretrain.num_classes x pretrain.images_per_class): no full batch to train on"
        )
    if augments_on_device(dataset_cfg.get("augment_on", "auto"), "ram", device):
        loader, sampler = _device_loader(data, cfg, device, progress)
    else:
        # decoded once (each epoch decoded every file again: 8 s of a 3-minute pre-training
        # here); the items are bit-identical to decoding the files (dml.data.cache)
        cache_in_ram(data, 0, progress, "source images")
        gen = torch.Generator().manual_seed(cfg.seed)
        loader = DataLoader(
            data, batch_size=cfg.batch_size, shuffle=True, drop_last=True, generator=gen
        )
        sampler = None
    amp = autocast_dtype(precision, device)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            model = build_torchvision(arch, last_stride=2, image_size=dataset_cfg.image_size)
            set_classifier(model, cfg.num_classes)
            model.to(device)
            if channels_last:
                model.to(memory_format=torch.channels_last)
            _train_classifier(model, loader, cfg, progress, amp, channels_last, sampler)
    finally:
        close_loader(loader)
    head = classifier_prefix(model)
    return {k: v.cpu() for k, v in model.state_dict().items() if not k.startswith(head)}


def _device_loader(data: ImageListDataset, cfg, device: torch.device, progress: bool):
    """The source set cached, its batches augmented on the device (as a run's on a GPU)."""
    workers = loader_workers(None, device)
    cache_in_ram(data, workers, progress, "source images")
    plan = AugmentPlan(data.transform)
    sampler = EpochBatchSampler(data.targets, cfg.batch_size, 0, cfg.seed)
    params = DataLoader(
        AugmentParams(data, plan),
        batch_sampler=SeededBatches(sampler),
        **loader_options(min(workers, 2), device, cfg.seed),
    )
    return DeviceBatches(params, DeviceImages(data.cache, device), plan), sampler


def _train_classifier(
    model: torch.nn.Module,
    loader,
    cfg,
    progress: bool,
    amp: torch.dtype | None = None,
    channels_last: bool = False,
    sampler: EpochBatchSampler | None = None,
) -> None:
    # AdamW with one warm-up epoch then cosine decay: SGD at a high LR from scratch
    # collapsed to chance on this data
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    total, warm = cfg.epochs * len(loader), len(loader)
    device = next(model.parameters()).device
    model.train()
    for epoch in range(cfg.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        # counted on the device: reading them every step would wait for the GPU each time
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        bar = tqdm(
            loader, desc=f"pretrain {epoch + 1}/{cfg.epochs}", leave=False, disable=not progress
        )
        for i, (x, y) in enumerate(bar):
            t = epoch * len(loader) + i
            scale = (
                (t + 1) / warm
                if t < warm
                else 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm)))
            )
            for g in opt.param_groups:
                g["lr"] = cfg.lr * scale
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            autocast = torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext()
            with autocast:
                logits = model(x)
                loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if progress and i % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        tqdm.write(
            f"pretrain epoch {epoch + 1}/{cfg.epochs}: train accuracy {int(correct) / seen:.3f}"
        )
