"""compute_embeddings: which feature it returns, with and without flip averaging."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dml.evaluation.embed import compute_embeddings
from dml.models import EmbeddingNet
from tests.conftest import tiny_backbone


def _model_and_loader():
    torch.manual_seed(0)
    model = EmbeddingNet(tiny_backbone(width=8), embedding_dim=5)
    x = torch.randn(6, 3, 8, 8)
    return model, x, DataLoader(TensorDataset(x, torch.arange(6)), batch_size=4)


def test_pooled_feature_is_the_backbone_mean_before_the_head():
    # Bug caught: "pooled" still going through the head (a random projection before training).
    model, x, loader = _model_and_loader()
    feats, labels = compute_embeddings(model, loader, torch.device("cpu"), feature="pooled")
    model.eval()
    expected = model.backbone(x).mean(dim=(2, 3))
    assert feats.shape == (6, 8) and labels.tolist() == list(range(6))
    assert torch.allclose(torch.from_numpy(feats), expected.detach(), atol=1e-6)
    emb, _ = compute_embeddings(model, loader, torch.device("cpu"))
    assert emb.shape == (6, 5)


def test_flip_adds_raw_features_of_image_and_mirror():
    """Bug: flip normalising each view before adding (the reference adds the raw features)."""
    model, x, loader = _model_and_loader()
    feats, _ = compute_embeddings(model, loader, torch.device("cpu"), True, "pooled")
    model.eval()
    expected = model.pooled(x) + model.pooled(torch.flip(x, dims=[3]))
    assert torch.allclose(torch.from_numpy(feats), expected.detach(), atol=1e-6)


class _LeftHeavy(nn.Module):
    """Features of a 1x2 image (left, right pixel): (10 * left, right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([10 * x[:, 0, 0, 0], x[:, 0, 0, 1]], dim=1)


def test_flip_sum_keeps_the_direction_of_the_larger_view():
    """Bug: per-view normalisation before the flip sum, which changes the retrieval direction.

    Image (1, 0): features (10, 0); its mirror (0, 1): features (0, 1). Raw sum (10, 1), whose
    direction is (10, 1) / sqrt(101) = (0.995, 0.0995); normalising each view first would
    give (1, 1), direction (0.707, 0.707).
    """
    image = torch.tensor([[[[1.0, 0.0]]]])
    loader = DataLoader(TensorDataset(image, torch.tensor([7])), batch_size=1)
    feats, labels = compute_embeddings(_LeftHeavy(), loader, torch.device("cpu"), flip=True)
    assert feats.tolist() == [[10.0, 1.0]] and labels.tolist() == [7]
    unit = feats[0] / (feats[0] ** 2).sum() ** 0.5
    assert abs(unit[0] - 0.99504) < 1e-4 and abs(unit[1] - 0.09950) < 1e-4


def test_unknown_feature_is_refused():
    model, _, loader = _model_and_loader()
    with pytest.raises(ValueError, match="feature must be one of"):
        compute_embeddings(model, loader, torch.device("cpu"), feature="logits")
