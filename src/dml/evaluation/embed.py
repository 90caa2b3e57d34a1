"""Embedding a dataset with a model, and the retrieval metrics of those embeddings."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from dml.models.embedding import EmbeddingNet

# eval.feature -> the model's function that computes it
FEATURES = {"embedding": lambda model: model, "pooled": lambda model: model.pooled}


@torch.no_grad()
def compute_embeddings(
    model: EmbeddingNet,
    loader: DataLoader,
    device: torch.device,
    flip: bool = False,
    feature: str = "embedding",
    on_device: bool = False,
) -> tuple[np.ndarray | torch.Tensor, np.ndarray]:
    """Features (float32, n x d) and labels (int64); flip adds the mirrored image's raw features.

    feature: "embedding" (the head's output) or "pooled" (the backbone's pooled features).
    Batches are written into arrays sized from len(loader.dataset), so peak memory holds one
    copy of the features rather than a list of batches plus their concatenation. on_device:
    the features as a float32 tensor left on `device` (a GPU search needs no round trip).
    """
    if feature not in FEATURES:
        raise ValueError(f"feature must be one of {tuple(FEATURES)}, got {feature!r}")
    forward = FEATURES[feature](model)
    was_training = model.training
    model.eval()
    feats = labels = None
    count = 0
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        emb = forward(images)
        if flip:
            # raw sum, as the reference code does: the retrieval metrics L2-normalise once,
            # so the view with the larger norm weighs more
            emb = emb + forward(torch.flip(images, dims=[3]))
        emb = emb.float() if on_device else emb.float().cpu().numpy()
        if feats is None:  # the feature width is known only once the model has run
            shape = (len(loader.dataset), *emb.shape[1:])
            feats = (
                torch.empty(shape, dtype=torch.float32, device=device)
                if on_device
                else np.empty(shape, dtype=np.float32)
            )
            labels = np.empty(len(loader.dataset), dtype=np.int64)
        if count + len(emb) > len(feats):  # a sampler yielding more than the dataset holds
            feats, labels = _grown(feats, count + len(emb)), _grown(labels, count + len(emb))
        feats[count : count + len(emb)] = emb
        labels[count : count + len(emb)] = torch.as_tensor(targets).numpy()
        count += len(emb)
    model.train(was_training)
    if feats is None:
        raise ValueError("the loader yielded no batches, so there is nothing to embed")
    # a sampler that skips items (drop_last, a custom subset) leaves the tail unused
    return feats[:count], labels[:count]


def _grown(buffer: np.ndarray | torch.Tensor, needed: int) -> np.ndarray | torch.Tensor:
    """buffer copied into one at least twice as long (and at least needed rows)."""
    shape = (max(needed, 2 * len(buffer)), *buffer.shape[1:])
    if isinstance(buffer, torch.Tensor):
        out_t = torch.empty(shape, dtype=buffer.dtype, device=buffer.device)
        out_t[: len(buffer)] = buffer
        return out_t
    out = np.empty(shape, dtype=buffer.dtype)
    out[: len(buffer)] = buffer
    return out
