"""Top-1 accuracy of the softmax classifier (task=classification, supplement Table 3)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from dml.models.embedding import EmbeddingNet


@torch.no_grad()
def predict(
    model: EmbeddingNet,
    classifier: nn.Module,
    loader: DataLoader,
    device: torch.device,
    flip: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted class index, true index) of every image; flip adds the mirror's logits."""
    was_training = (model.training, classifier.training)
    model.eval()
    classifier.eval()
    predicted, labels = [], []
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        logits = classifier(model(images))
        if flip:
            logits = logits + classifier(model(torch.flip(images, dims=[3])))
        predicted.append(logits.argmax(dim=1).cpu())
        labels.append(torch.as_tensor(targets))
    model.train(was_training[0])
    classifier.train(was_training[1])
    return torch.cat(predicted), torch.cat(labels)


def top1_accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """{"top1": share of images whose predicted class is their class} (a fraction)."""
    if len(labels) == 0:
        raise ValueError("no images to score")
    return {"top1": (predicted == labels).float().mean().item()}
