"""Each configured loss builds from its config and trains an embedding."""

from __future__ import annotations

import pytest
import torch

from dml.errors import DmlError
from dml.losses import build_loss
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
    cfg = compose_cfg(["loss=triplet", "loss.miner=random"]).loss
    with pytest.raises(DmlError, match="semihard"):
        build_loss(cfg, 4, 8)
