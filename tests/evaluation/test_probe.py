"""Per-unit linear probes: feature shapes and accuracies on features made by hand."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from dml.evaluation.probe import factor_probes, probe_accuracy, unit_features
from dml.models import EmbeddingNet
from tests.conftest import tiny_backbone


def test_unit_features_are_each_units_output_on_a_grid():
    # Bug caught: probing the stem twice or the last unit only (all units equal).
    torch.manual_seed(0)
    model = EmbeddingNet(tiny_backbone(width=8, units=3), 4).eval()
    x = torch.randn(5, 3, 8, 8)
    feats = unit_features(
        model,
        DataLoader(TensorDataset(x, torch.zeros(5)), batch_size=2),
        torch.device("cpu"),
        grid=2,
    )
    assert [f.shape for f in feats] == [(5, 32)] * 3
    with torch.no_grad():
        out = model.backbone.units[1](model.backbone.units[0](model.backbone.stem(x)))
    expected = torch.nn.functional.adaptive_avg_pool2d(out, 2).flatten(1).numpy()
    assert np.allclose(feats[1], expected, atol=1e-6)
    assert not np.allclose(feats[0], feats[1])


def test_probe_reads_an_encoded_factor_and_not_a_missing_one():
    # Bug caught: fitting and scoring on the same rows (a missing factor would look encoded),
    # or labels misaligned with rows.
    rng = np.random.default_rng(0)
    y_fit, y_eval = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    noise = rng.normal(size=(600, 20))
    fit = noise[:300] + 3 * np.eye(20)[y_fit]
    ev = noise[300:] + 3 * np.eye(20)[y_eval]
    assert probe_accuracy(fit, y_fit, ev, y_eval) > 0.95
    shuffled = rng.permutation(y_eval)
    assert abs(probe_accuracy(fit, y_fit, ev, shuffled) - 1 / 3) < 0.1
    acc = factor_probes([fit, noise[:300]], {"f": y_fit}, [ev, noise[300:]], {"f": y_eval})
    assert acc["f"][0] > 0.95 and abs(acc["f"][1] - 1 / 3) < 0.1
