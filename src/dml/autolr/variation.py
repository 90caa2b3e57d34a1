"""Per-unit weight variation (AutoLR Eq. 1) against a snapshot of main-path conv weights."""

from __future__ import annotations

import torch

from dml.models.backbones import Backbone


def snapshot_main_path(backbone: Backbone) -> list[list[torch.Tensor]]:
    """Detached copies of each unit's main-path weights, on the model's device."""
    with torch.no_grad():
        return [
            [p.detach().clone() for p in backbone.main_path_params(k)]
            for k in range(backbone.num_units)
        ]


def weight_variation(backbone: Backbone, start: list[list[torch.Tensor]]) -> list[float]:
    """v_k = ||W_end - W_start||_2 / n_k over unit k's main-path weights joined into one vector."""
    out = []
    with torch.no_grad():
        for k, before in enumerate(start):
            after = backbone.main_path_params(k)
            sq = sum(float((a.double() - b.double()).pow(2).sum()) for a, b in zip(after, before))
            n = sum(b.numel() for b in before)
            out.append(sq**0.5 / n)
    return out
