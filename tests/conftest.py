"""Shared fixtures: configs through Hydra's compose API, and a tiny unit-structured model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models.resnet import BasicBlock

import dml.config  # noqa: F401  (registers the schemas)
from dml.cli import compose_train
from dml.data.sampler import EpochBatchSampler
from dml.logging import ScalarLogger
from dml.losses import SoftmaxLoss
from dml.models import Backbone, EmbeddingNet, UnitMap
from dml.training.loop import Trainer, TrainerParts
from dml.training.optim import build_optimizer
from dml.training.param_groups import build_param_groups

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")


def compose_cfg(overrides: list[str] | None = None, hydra: bool = False) -> DictConfig:
    """The train config as train.py would compose it (with the hydra node if `hydra`)."""
    return compose_train(overrides, hydra)


def autolr_cfg(**overrides) -> DictConfig:
    """The autolr config with alpha = beta = 1 (feasible unless all variations are equal)."""
    cfg = OmegaConf.to_container(compose_cfg().autolr, resolve=True)
    cfg.update({"alpha": 1.0, "beta": 1.0, **overrides})
    return OmegaConf.create(cfg)


# A synthetic run shrunk to seconds: 6 classes of 6 images at 32 px, one epoch.
TINY_OVERRIDES = [
    "model.pretrained=none",
    "trainer.epochs=1",
    "dataset.image_size=32",
    "dataset.resize_size=32",
    "dataset.generated_size=32",
    "dataset.num_classes=6",
    "dataset.images_per_class=6",
    "trainer.batch_size=12",
    "logger.progress=false",
    "eval.selection=test",  # 3 training classes: too few to hold some out
]


@pytest.fixture
def cfg_tiny(tmp_path: Path) -> DictConfig:
    """A synthetic-data config shrunk to run in seconds, writing under tmp_path."""
    cfg = compose_cfg([*TINY_OVERRIDES, f"data_dir={tmp_path / 'data'}"])
    yield cfg
    GlobalHydra.instance().clear()


def tiny_backbone(width: int = 8, units: int = 4) -> Backbone:
    """A 4-unit residual backbone small enough for many trials per test."""
    stem = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
    )
    blocks = [BasicBlock(width, width) for _ in range(units)]
    return Backbone(UnitMap(stem, blocks, [["conv1.weight", "conv2.weight"]] * units))


def tiny_trainer(
    policy,
    tmp_path: Path,
    epochs: int = 1,
    seed: int = 0,
    n: int = 64,
    classes: int = 4,
    **options,
) -> Trainer:
    """A Trainer over random 8x8 images with a softmax loss and the given LR policy;
    options: further Trainer keywords (precision, channels_last)."""
    torch.manual_seed(seed)
    model = EmbeddingNet(tiny_backbone(), embedding_dim=8)
    loss = SoftmaxLoss(classes, 8)
    x = torch.randn(n, 3, 8, 8)
    y = torch.arange(n) % classes
    x += y.view(-1, 1, 1, 1).float() * 0.5  # a learnable signal so the loss moves
    sampler = EpochBatchSampler(y.tolist(), batch_size=16, seed=seed)
    loader = DataLoader(TensorDataset(x, y), batch_sampler=sampler)
    return trainer_over(model, loss, loader, sampler, policy, tmp_path, epochs, **options)


def trainer_over(
    model, loss, loader, sampler, policy, tmp_path: Path, epochs: int, **options
) -> Trainer:
    """A CPU Trainer of model and loss over loader: SGD (momentum 0.9, Nesterov) at 0.05 for
    every group, no evaluation, no logging, no checkpoints; options: further Trainer keywords."""
    groups, infos = build_param_groups(model, loss, lr=0.05, head_lr=0.05)
    optimizer = build_optimizer(compose_cfg(["optimizer=sgd"]).optimizer, groups)
    parts = TrainerParts(
        model, loss, optimizer, infos, policy, loader, sampler, torch.device("cpu")
    )
    return Trainer(
        parts,
        epochs=epochs,
        logger=ScalarLogger(tmp_path, enabled=False),
        evaluate=lambda epoch: {},
        run_dir=tmp_path,
        progress=False,
        save_checkpoints=False,
        **options,
    )
