"""Where and how a run computes: the device, seeds and cuDNN's algorithm search."""

from __future__ import annotations

import random

import numpy as np
import torch

from dml.errors import DmlError
from dml.training import distributed


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """'auto' takes CUDA when present, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():  # under torchrun: this rank's GPU
            return torch.device("cuda", distributed.local_rank())
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DmlError(f"trainer.device={name} but CUDA is not available: use auto or cpu")
    return torch.device(name)


def set_cudnn_benchmark(device: torch.device, benchmark: bool) -> None:
    """trainer.cudnn_benchmark: cuDNN times its convolution algorithms per shape (CUDA only)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = benchmark
