"""compute_embeddings: which feature it returns, with and without flip averaging, and that
streaming into preallocated arrays gives what the list + concatenate version gave."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, Subset, TensorDataset

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


@torch.no_grad()
def _concatenated(model, loader, flip, feature):
    """The previous compute_embeddings: a list of batches, concatenated at the end."""
    forward = model if feature == "embedding" else model.pooled
    model.eval()
    feats, labels = [], []
    for images, targets in loader:
        emb = forward(images)
        if flip:
            emb = emb + forward(torch.flip(images, dims=[3]))
        feats.append(emb.float().cpu())
        labels.append(torch.as_tensor(targets))
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()


@pytest.mark.parametrize(("flip", "feature"), [(False, "embedding"), (True, "pooled")])
def test_preallocated_arrays_equal_the_concatenated_batches(flip, feature):
    """Bug: batches written at the wrong offset, a partial last batch (11 = 4 + 4 + 3) cut
    or left as uninitialised rows, the buffer sized from the base dataset instead of the
    Subset the loader reads, or a dtype other than float32 / int64."""
    torch.manual_seed(1)
    model = EmbeddingNet(tiny_backbone(width=8), embedding_dim=5)
    x = torch.randn(20, 3, 8, 8)
    subset = Subset(TensorDataset(x, torch.arange(100, 120)), list(range(3, 14)))
    loader = DataLoader(subset, batch_size=4)
    feats, labels = compute_embeddings(model, loader, torch.device("cpu"), flip, feature)
    want_feats, want_labels = _concatenated(model, loader, flip, feature)
    assert feats.dtype == np.float32 and labels.dtype == np.int64
    assert feats.shape == want_feats.shape == (11, 5 if feature == "embedding" else 8)
    np.testing.assert_array_equal(feats, want_feats)
    np.testing.assert_array_equal(labels, want_labels)
    assert labels.tolist() == list(range(103, 114))
    # the one buffer behind the result holds the Subset's 11 rows, not the base dataset's 20
    assert (feats if feats.base is None else feats.base).shape[0] == 11


@pytest.mark.parametrize("sampler", ["drop_last", "more_than_dataset"])
def test_loaders_yielding_fewer_or_more_items_than_the_dataset(sampler):
    """Bug: a loader that skips items (drop_last) returning unfilled rows at the end, or one
    whose sampler yields more than len(dataset) overflowing the preallocated arrays."""
    model, x, _ = _model_and_loader()
    data = TensorDataset(x, torch.arange(6))
    if sampler == "drop_last":
        loader = DataLoader(data, batch_size=4, drop_last=True)
    else:
        draws = RandomSampler(data, replacement=True, num_samples=15)
        loader = DataLoader(data, batch_size=4, sampler=draws)
    torch.manual_seed(2)
    feats, labels = compute_embeddings(model, loader, torch.device("cpu"))
    torch.manual_seed(2)
    want_feats, want_labels = _concatenated(model, loader, False, "embedding")
    assert len(feats) == (4 if sampler == "drop_last" else 15)
    np.testing.assert_array_equal(feats, want_feats)
    np.testing.assert_array_equal(labels, want_labels)


def test_empty_loader_is_refused():
    """Bug: an empty loader returning an unallocated (None) array instead of an error."""
    model, x, _ = _model_and_loader()
    loader = DataLoader(Subset(TensorDataset(x, torch.arange(6)), []), batch_size=4)
    with pytest.raises(ValueError, match="no batches"):
        compute_embeddings(model, loader, torch.device("cpu"))
