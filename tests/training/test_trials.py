"""AutoLR re-run trials: a re-run starts from exactly the epoch's state and sees the same data."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

from dml.data import ImageListDataset
from dml.data.records import Split
from dml.data.sampler import EpochBatchSampler, SeededBatches
from dml.losses import SoftmaxLoss
from dml.models import EmbeddingNet
from dml.policies.autolr import AutoLRPolicy
from dml.training.loop import Trainer
from tests.conftest import autolr_cfg, tiny_backbone, trainer_over


def image_split(folder, classes: int = 4, per_class: int = 6) -> Split:
    """Random 12 x 12 RGB PNGs on disk, `per_class` per class."""
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for c in range(classes):
        for i in range(per_class):
            path = folder / f"c{c}_{i}.png"
            pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
            paths.append(str(path))
            labels.append(c)
    return Split(paths, labels)


def image_trainer(tmp_path, policy, epochs: int) -> Trainer:
    """A Trainer over real image files with a random crop and flip, a paper head (dropout,
    BatchNorm) and a softmax loss with its own parameters: every kind of state a trial has."""
    torch.manual_seed(0)
    folder = tmp_path / "images"
    folder.mkdir()
    augment = transforms.Compose(
        [
            transforms.RandomResizedCrop(8, scale=(0.3, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
        ]
    )
    data = ImageListDataset(image_split(folder), augment)
    sampler = EpochBatchSampler(data.targets, batch_size=8, samples_per_class=2, seed=0)
    loader = DataLoader(data, batch_sampler=SeededBatches(sampler))
    model = EmbeddingNet(tiny_backbone(), embedding_dim=8, head="paper")
    return trainer_over(model, SoftmaxLoss(4, 8), loader, sampler, policy, tmp_path, epochs)


def record_trials(trainer: Trainer) -> list[dict]:
    """Per trial: the state right after begin_epoch, the inputs of every step, the losses."""
    trials: list[dict] = []
    policy = trainer.p.policy
    begin = policy.begin_epoch

    def spy_begin(epoch):
        begin(epoch)
        trials.append(
            {
                "epoch": epoch,
                "model": copy.deepcopy(trainer.p.model.state_dict()),
                "loss": copy.deepcopy(trainer.p.loss.state_dict()),
                "optimizer": copy.deepcopy(trainer.p.optimizer.state_dict()["state"]),
                "rng": torch.get_rng_state(),
                "inputs": [],
                "step_losses": [],
            }
        )

    policy.begin_epoch = spy_begin
    trainer.p.model.register_forward_pre_hook(
        lambda module, args: trials[-1]["inputs"].append(args[0].clone())
    )
    loss_forward = trainer.p.loss.forward

    def spy_loss(emb, labels):
        value = loss_forward(emb, labels)
        trials[-1]["step_losses"].append(value.item())
        return value

    trainer.p.loss.forward = spy_loss
    return trials


def equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_rerun_restores_every_state_and_sees_the_same_augmented_batches(tmp_path):
    """Catches a re-run that does not restore BatchNorm statistics, the loss's parameters,
    the momentum buffers (autolr.reset_momentum=false) or the RNG (dropout masks), or that
    draws new crops and flips: the first forward of trial 1 must equal trial 0's exactly."""
    cfg = autolr_cfg(threshold=1.01, threshold_decay=1.0, max_trials=2, reset_momentum=False)
    trainer = image_trainer(tmp_path, AutoLRPolicy(cfg, 0.05), epochs=2)
    trials = record_trials(trainer)
    with pytest.warns(UserWarning, match="max_trials"):
        trainer.fit()
    first, second = [t for t in trials if t["epoch"] == 1]  # epoch 1: momentum exists
    assert first["optimizer"], "momentum buffers should exist after epoch 0"
    for key in ("model", "loss"):
        assert equal_states(first[key], second[key]), key
    assert any("running_mean" in k for k in first["model"])  # BN statistics are compared
    for pid, state in first["optimizer"].items():
        assert torch.equal(state["momentum_buffer"], second["optimizer"][pid]["momentum_buffer"])
    assert torch.equal(first["rng"], second["rng"])
    assert len(first["inputs"]) == len(second["inputs"]) == 3
    for a, b in zip(first["inputs"], second["inputs"]):
        assert torch.equal(a, b)
    # same weights, batch and dropout mask: the first loss is bit-equal (LRs differ after it)
    assert first["step_losses"][0] == second["step_losses"][0]
    # and the augmentation is random: epoch 0 saw other crops of the same batches' images
    epoch0 = [t for t in trials if t["epoch"] == 0][0]
    assert not all(torch.equal(a, b) for a, b in zip(epoch0["inputs"], first["inputs"]))


def test_capped_epoch_logs_the_kept_trials_loss_and_no_rerun(tmp_path, monkeypatch, capsys):
    """Catches logging the last trial's loss when max_trials keeps an earlier one, and a
    console line announcing a re-run that does not happen."""
    scores = iter([0.5, 0.3])  # trial 0 scores best, trial 1 is the last
    monkeypatch.setattr("dml.policies.autolr.sorting_score", lambda v: next(scores))
    policy = AutoLRPolicy(autolr_cfg(threshold=0.9, max_trials=2), 0.05)
    trainer = image_trainer(tmp_path, policy, epochs=1)
    means = []
    train_epoch = trainer.train_epoch
    trainer.train_epoch = lambda epoch, trial: means.append(train_epoch(epoch, trial)) or means[-1]
    with pytest.warns(UserWarning, match="keeping trial 0"):
        history = trainer.fit()
    assert policy.kept_trial() == 0 and len(means) == 2 and means[0] != means[1]
    assert history[0]["loss"] == means[0] and history[0]["trials"] == 2
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "trial 1:" in ln]
    assert len(lines) == 1 and "re-run" not in lines[0] and "keeping the best" in lines[0]
