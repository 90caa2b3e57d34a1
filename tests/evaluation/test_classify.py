"""Top-1 of the classifier: counts worked out by hand on models whose answers are known."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dml.evaluation.classify import predict, top1_accuracy


class LeftMinusRight(nn.Module):
    """'Embedding' (left-half mean - right-half mean, its negative): a flip swaps the two."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x[..., :2].mean(dim=(1, 2, 3)) - x[..., 2:].mean(dim=(1, 2, 3))
        return torch.stack([d, -d], dim=1)


def test_top1_is_the_share_of_correct_predictions():
    """Bug: accuracy computed over classes instead of images, or as a count."""
    predicted = torch.tensor([0, 1, 2, 2, 1])
    labels = torch.tensor([0, 1, 1, 2, 0])
    assert top1_accuracy(predicted, labels) == {"top1": pytest.approx(3 / 5)}


def test_predict_takes_the_argmax_of_the_classifier_and_restores_train_mode():
    """Bug: predictions from the embedding instead of the classifier's logits, or a model
    left in eval mode after scoring (dropout and BN would stop training)."""
    x = torch.zeros(4, 1, 2, 4)
    x[0, ..., :2] = 1.0  # left brighter -> class 0
    x[1, ..., 2:] = 1.0  # right brighter -> class 1
    x[2, ..., :2] = 2.0
    x[3, ..., 2:] = 3.0
    labels = torch.tensor([0, 1, 1, 1])  # image 2 is mislabelled on purpose
    loader = DataLoader(TensorDataset(x, labels), batch_size=3)
    model, classifier = LeftMinusRight(), nn.Identity()
    model.train()
    pred, true = predict(model, classifier, loader, torch.device("cpu"))
    assert pred.tolist() == [0, 1, 0, 1] and true.tolist() == labels.tolist()
    assert top1_accuracy(pred, true)["top1"] == pytest.approx(0.75)
    assert model.training


def test_flip_adds_the_mirror_logits():
    """Bug: flip ignored, or the mirror's logits replacing the image's instead of adding.

    Image 1, row [3, 3, 1, 1]: logits (+2, -2); mirror (-2, +2); the sum ties at 0 and argmax
    takes class 0. Image 2, row [0, 0, 5, 1]: d = 0 - 3 = -3 (class 1); mirror [1, 5, 0, 0]:
    d = 3 - 0 = +3; the sum is 0 again -> class 0, so flip changes its prediction."""
    x = torch.tensor([[[[3.0, 3.0, 1.0, 1.0]]], [[[0.0, 0.0, 5.0, 1.0]]]])
    loader = DataLoader(TensorDataset(x, torch.tensor([0, 1])), batch_size=2)
    plain, _ = predict(LeftMinusRight(), nn.Identity(), loader, torch.device("cpu"))
    assert plain.tolist() == [0, 1]
    flipped, _ = predict(LeftMinusRight(), nn.Identity(), loader, torch.device("cpu"), flip=True)
    assert flipped.tolist() == [0, 0]
