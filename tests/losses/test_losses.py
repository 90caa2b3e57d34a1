"""Each configured loss builds from its config and trains an embedding."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from dml.errors import DmlError
from dml.losses import SoftmaxLoss, build_loss
from tests.conftest import compose_cfg


@pytest.mark.parametrize(
    ("name", "has_params"), [("softmax", True), ("proxy_anchor", True), ("triplet", False)]
)
def test_loss_is_finite_and_backpropagates(name, has_params):
    torch.manual_seed(0)
    loss = build_loss(compose_cfg([f"loss={name}"]).loss, num_classes=4, embedding_dim=8)
    emb = torch.randn(16, 8, requires_grad=True)
    labels = torch.arange(16) % 4
    value = loss(emb, labels)
    value.backward()
    assert torch.isfinite(value) and value.item() > 0
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    assert bool(list(loss.parameters())) == has_params


def test_unknown_miner_is_rejected():
    """Catches a misspelt miner reaching pytorch-metric-learning (which would fail deep in the
    first batch) instead of the triplet entry's one-line check."""
    from dml.validation import check_config

    with pytest.raises(DmlError) as info:
        check_config(compose_cfg(["loss=triplet", "loss.miner=random"]))
    assert str(info.value) == (
        "loss.miner=random is out of range: expected semihard, hard, all or easy"
    )


def test_classifier_std_sets_the_softmax_classifier_init():
    """Bug: loss.classifier_std not reaching the classifier (PyTorch's default init kept).

    N(0, 0.001) over 1000 x 512 = 512,000 draws: the sample std is 0.001 within ~1e-6 (its
    standard error is 0.001 / sqrt(2 * 512000)); the default uniform(+-1/sqrt(512)) init would
    have std 1 / sqrt(512 * 3) = 0.0255.
    """
    torch.manual_seed(0)
    cfg = compose_cfg(["loss=softmax", "loss.classifier_std=0.001"]).loss
    classifier = build_loss(cfg, num_classes=1000, embedding_dim=512).classifier
    assert classifier.weight.shape == (1000, 512)
    assert abs(classifier.weight.std().item() - 0.001) < 2e-5
    assert abs(classifier.weight.mean().item()) < 1e-5
    assert torch.equal(classifier.bias, torch.zeros(1000))


def test_softmax_default_init_when_classifier_std_unset():
    """Bug: classifier_std=None (or a config saved before the key existed) not meaning default.

    PyTorch's Linear init is uniform(+-1/sqrt(512)): std 1 / sqrt(3 * 512) = 0.02552.
    """
    torch.manual_seed(0)
    old = OmegaConf.create({"name": "softmax", "lr_mult": 1.0, "temperature": 1.0})
    OmegaConf.set_struct(old, True)
    for cfg in (old, compose_cfg(["loss=softmax"]).loss):
        classifier = build_loss(cfg, num_classes=1000, embedding_dim=512).classifier
        assert abs(classifier.weight.std().item() - 0.02552) < 2e-4
        assert classifier.bias.abs().max() > 0
    assert SoftmaxLoss(3, 4, classifier_std=0.5).classifier.bias.abs().max() == 0
