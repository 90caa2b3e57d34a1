"""Each configured loss builds from its config and trains an embedding."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from dml.errors import DmlError
from dml.losses import SoftmaxLoss, build_loss
from tests.conftest import compose_cfg


@pytest.mark.parametrize(
    ("name", "has_params"),
    [("softmax", True), ("proxy_anchor", True), ("triplet", False), ("multi_similarity", False)],
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


def test_multi_similarity_matches_the_papers_formula_worked_by_hand():
    """Catches a key of the multi-similarity YAML not reaching pytorch-metric-learning (alpha
    and beta swapped, base or the miner's epsilon dropped). Four unit vectors at 0, 30, 60 and
    90 degrees, classes (0, 60) and (30, 90): every positive pair has cosine 0.5, negatives
    cos 30 = 0.866 or cos 90 = 0. With alpha 2, beta 4, base 0.5 an anchor's loss is
    log(1 + sum_p e^(-2 (s_p - 0.5))) / 2 + log(1 + sum_n e^(4 (s_n - 0.5))) / 4:
    the positive term is log(2) / 2 = 0.346574; e^(4 x 0.366025) = 4.323648, e^(-2) = 0.135335.
    Anchors 0 and 90 see negatives (0.866, 0): log(5.458983) / 4 = 0.424316; anchors 30 and 60
    see (0.866, 0.866): log(9.647296) / 4 = 0.566670; the mean of the four sums is 0.842067.
    With epsilon 0.1 the miner drops the negative at 0 (0 + 0.1 < the positive's 0.5):
    those anchors' term is log(5.323648) / 4 = 0.418053, and the mean 0.838929."""
    c = 3**0.5 / 2
    x = torch.tensor([[1.0, 0.0], [0.5, c], [c, 0.5], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1])  # rows at 0, 60, 30 and 90 degrees
    overrides = ["loss=multi_similarity", "loss.alpha=2", "loss.beta=4", "loss.base=0.5"]
    for epsilon, expected in ((10, 0.842067), (0.1, 0.838929)):
        cfg = compose_cfg([*overrides, f"loss.epsilon={epsilon}"]).loss
        assert build_loss(cfg, 2, 2)(x, y).item() == pytest.approx(expected, abs=2e-6)
