"""Shared fixtures: configs through Hydra's compose API, and a tiny unit-structured model."""

from __future__ import annotations

import importlib.util
import os
import runpy
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models.resnet import BasicBlock

import dml.config  # noqa: F401  (registers the schemas)
from dml.cli import compose_train, prepare_argv, run_cli
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
# the tiny run with a val split: 8 classes, 4 for training (2 train, 2 held out for val); a
# batch of 12 holds both training classes, 6 images each (one class per rank under 2 ranks)
TINY_VAL_OVERRIDES = [
    *TINY_OVERRIDES,
    "dataset.num_classes=8",
    "eval.selection=val",
    "eval.val_classes=0.5",
    "trainer.samples_per_class=6",
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


# -- train.py as a user types it, in this process ------------------------------------------
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CliResult:
    """What `python train.py ...` printed and returned."""

    returncode: int
    stdout: str
    stderr: str

    def __iter__(self):
        return iter((self.returncode, self.stdout, self.stderr))


def _train_main():
    """train.py's @hydra.main function."""
    spec = importlib.util.spec_from_file_location("train_entry", ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Hydra finds configs/ next to the file only for a script run as __main__
    module.main.__wrapped__.__module__ = "__main__"
    return module.main


def _interpreter_warnings() -> None:
    """Warnings as a fresh interpreter shows them: on stderr through warnings.formatwarning
    (pytest would record them instead), with Python's default filters."""
    warnings.resetwarnings()
    warnings.simplefilter("default")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show


@pytest.fixture
def train_cli(monkeypatch, capsys):
    """`python train.py *args` run in this process, through prepare_argv, Hydra and run_cli:
    the real entry point without the interpreter's start-up (5 s a run on this machine)."""

    # run_cli sets both for the process; they go back after the test
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    monkeypatch.setattr(sys, "argv", sys.argv)

    def call(*args: str) -> CliResult:
        capsys.readouterr()  # what earlier calls printed is theirs
        GlobalHydra.instance().clear()
        monkeypatch.chdir(ROOT)
        monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
        code = 0
        with warnings.catch_warnings():
            _interpreter_warnings()
            try:
                sys.argv = prepare_argv(["train.py", *args])
                run_cli(_train_main())
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                GlobalHydra.instance().clear()
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return call


@pytest.fixture
def script_cli(monkeypatch, capsys):
    """`python scripts/<name>.py *args` run in this process as the interpreter runs it (the
    script file as __main__, argv set): its exit status, stdout and stderr, without the 3-5 s
    start-up of a new interpreter."""
    monkeypatch.setattr(sys, "argv", sys.argv)

    def call(script: Path, *args: str) -> CliResult:
        capsys.readouterr()
        sys.argv = [str(script), *args]
        code = 0
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)  # as the interpreter prints it
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return call


@pytest.fixture
def train(train_cli, tmp_path_factory):
    """`python train.py` (in this process, through the real entry point) into tmp_path/run,
    or tmp_path/sweep for a multirun; the generated data is shared across the tests."""
    data = tmp_path_factory.getbasetemp() / "shared-data"

    def call(tmp_path: Path, *overrides: str, multirun: bool = False, tiny: bool = True):
        return train_cli(
            *(["-m"] if multirun else []),
            *(TINY_OVERRIDES if tiny else []),
            f"data_dir={data}",
            f"hydra.run.dir={tmp_path / 'run'}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            *overrides,
        )

    return call


# -- train.py in a process of its own: where signals and exit are the point --------------
def unbuffered_env(**extra: str) -> dict:
    """os.environ with PYTHONUNBUFFERED (lines arrive as printed) and extra."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def stop_when(args: list[str], marker: str, sig: int) -> tuple[int, str, str]:
    """Start args in ROOT; send sig as soon as a stdout line contains marker; (rc, out, err)."""
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=unbuffered_env(),
    )
    out = []
    for line in proc.stdout:
        out.append(line)
        if marker in line:
            proc.send_signal(sig)
            break
    rest, err = proc.communicate(timeout=300)
    return proc.returncode, "".join(out) + rest, err
