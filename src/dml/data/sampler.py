"""Epoch-seeded batch sampler: a re-run of an epoch sees the same batches, and resume is exact."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from dml.errors import DmlError


class EpochBatchSampler(Sampler[list[int]]):
    """Shuffled batches (samples_per_class=0) or class-balanced batches of m images per class.

    The order depends only on (seed, epoch), set with set_epoch, like DistributedSampler.
    """

    def __init__(
        self, labels: Sequence[int], batch_size: int, samples_per_class: int = 0, seed: int = 0
    ) -> None:
        if batch_size < 2 or batch_size > len(labels):
            raise DmlError(
                f"trainer.batch_size={batch_size}: expected 2..{len(labels)} "
                f"(the training split has {len(labels)} images)"
            )
        m = samples_per_class
        if m and (m < 2 or batch_size % m):
            raise DmlError(
                f"trainer.samples_per_class={m}: expected 0 or a divisor of "
                f"trainer.batch_size={batch_size} that is at least 2"
            )
        self.labels = torch.as_tensor(list(labels))
        self.batch_size, self.m, self.seed, self.epoch = batch_size, m, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order __iter__ yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = self._balanced(gen) if self.m else torch.randperm(len(self.labels), generator=gen)
        for b in range(len(self)):
            yield order[b * self.batch_size : (b + 1) * self.batch_size].tolist()

    def _balanced(self, gen: torch.Generator) -> torch.Tensor:
        # classes are visited in random order; each contributes m images (with replacement
        # when it has fewer), so every batch holds batch_size/m classes
        classes = self.labels.unique()
        chunks = []
        while sum(len(c) for c in chunks) < len(self) * self.batch_size:
            for c in classes[torch.randperm(len(classes), generator=gen)]:
                idx = (self.labels == c).nonzero().flatten()
                pick = (
                    torch.randint(len(idx), (self.m,), generator=gen)
                    if len(idx) < self.m
                    else torch.randperm(len(idx), generator=gen)[: self.m]
                )
                chunks.append(idx[pick])
        return torch.cat(chunks)

    def state_dict(self) -> dict:
        """Seed and epoch: all that determines the order."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        """Restore seed and epoch."""
        self.seed, self.epoch = state["seed"], state["epoch"]


def augment_seed(seed: int, epoch: int, position: int) -> int:
    """The augmentation seed of the sample drawn at `position` of `epoch`'s order."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


class SeededBatches(Sampler[list[tuple[int, int]]]):
    """The batches of an EpochBatchSampler as (index, augmentation seed) pairs.

    Keying augmentation by (seed, epoch, position) rather than by worker makes a run's
    results independent of dataset.num_workers, and a re-run trial sees the same crops.
    """

    def __init__(self, batches: EpochBatchSampler) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        b = self.batches
        for i, batch in enumerate(b):
            start = i * b.batch_size
            yield [(j, augment_seed(b.seed, b.epoch, start + k)) for k, j in enumerate(batch)]
