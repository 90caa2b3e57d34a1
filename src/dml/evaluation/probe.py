"""Per-unit linear probes: how well each unit's output encodes each factor of the images."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import RidgeClassifier
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader

from dml.models.embedding import EmbeddingNet


@torch.no_grad()
def unit_features(
    model: EmbeddingNet, loader: DataLoader, device: torch.device, grid: int = 2
) -> list[np.ndarray]:
    """Per unit, every image's output average-pooled to grid x grid cells and flattened."""
    # a grid rather than one global mean keeps where a detail is (a cap, a tail), which a
    # probe of a low unit needs: its channels see small patches
    model.eval()
    per_unit: list[list[torch.Tensor]] = [[] for _ in model.backbone.units]
    for images, _ in loader:
        x = model.backbone.stem(images.to(device))
        for k, unit in enumerate(model.backbone.units):
            x = unit(x)
            cells = torch.nn.functional.adaptive_avg_pool2d(x, grid)
            per_unit[k].append(cells.flatten(1).float().cpu())
    return [torch.cat(chunks).numpy() for chunks in per_unit]


def probe_accuracy(
    fit_x: np.ndarray, fit_y: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray
) -> float:
    """Held-out accuracy of a ridge classifier on standardised features."""
    scaler = StandardScaler().fit(fit_x)
    clf = RidgeClassifier(alpha=float(fit_x.shape[1])).fit(scaler.transform(fit_x), fit_y)
    return float((clf.predict(scaler.transform(eval_x)) == eval_y).mean())


def factor_probes(
    fit_feats: list[np.ndarray],
    fit_factors: dict[str, np.ndarray],
    eval_feats: list[np.ndarray],
    eval_factors: dict[str, np.ndarray],
) -> dict[str, list[float]]:
    """Accuracy per factor and unit: probes fit on one image set, scored on another."""
    return {
        name: [
            probe_accuracy(fx, fit_factors[name], ex, eval_factors[name])
            for fx, ex in zip(fit_feats, eval_feats)
        ]
        for name in fit_factors
    }
