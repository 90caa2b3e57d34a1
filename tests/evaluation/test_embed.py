"""compute_embeddings: which feature it returns, with and without flip averaging."""

from __future__ import annotations

import pytest
import torch
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


def test_flip_adds_normalised_features_of_image_and_mirror():
    model, x, loader = _model_and_loader()
    feats, _ = compute_embeddings(model, loader, torch.device("cpu"), True, "pooled")
    model.eval()
    one = torch.nn.functional.normalize(model.pooled(x), dim=1)
    two = torch.nn.functional.normalize(model.pooled(torch.flip(x, dims=[3])), dim=1)
    assert torch.allclose(torch.from_numpy(feats), (one + two).detach(), atol=1e-6)


def test_unknown_feature_is_refused():
    model, _, loader = _model_and_loader()
    with pytest.raises(ValueError, match="feature must be one of"):
        compute_embeddings(model, loader, torch.device("cpu"), feature="logits")
