"""Atomic checkpoint files: a crash mid-write never leaves a half-written checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def save_checkpoint(path: Path, state: dict) -> None:
    """Write state to path via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by save_checkpoint (CPU tensors)."""
    return torch.load(path, map_location="cpu", weights_only=False)
