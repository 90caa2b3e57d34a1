"""Embedding a dataset with a model, and the retrieval metrics of those embeddings."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from dml.models.embedding import EmbeddingNet

FEATURES = ("embedding", "pooled")


@torch.no_grad()
def compute_embeddings(
    model: EmbeddingNet,
    loader: DataLoader,
    device: torch.device,
    flip: bool = False,
    feature: str = "embedding",
) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32, n x d) and labels; flip adds the mirrored image's raw features.

    feature: "embedding" (the head's output) or "pooled" (the backbone's pooled features).
    """
    if feature not in FEATURES:
        raise ValueError(f"feature must be one of {FEATURES}, got {feature!r}")
    forward = model if feature == "embedding" else model.pooled
    was_training = model.training
    model.eval()
    feats, labels = [], []
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        emb = forward(images)
        if flip:
            # raw sum, as the reference code does: the retrieval metrics L2-normalise once,
            # so the view with the larger norm weighs more
            emb = emb + forward(torch.flip(images, dims=[3]))
        feats.append(emb.float().cpu())
        labels.append(torch.as_tensor(targets))
    model.train(was_training)
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()
