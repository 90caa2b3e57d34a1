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
    Under DDP (world_size > 1) batch_size stays the global batch: every rank draws the same
    global batches and takes its own contiguous share of batch_size / world_size, so the
    ranks together see exactly what one process would (a re-run trial included).
    """

    def __init__(
        self,
        labels: Sequence[int],
        batch_size: int,
        samples_per_class: int = 0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
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
        if m:
            classes = len(self.labels.unique())
            if classes < batch_size // m:
                raise DmlError(
                    f"trainer.batch_size={batch_size} with trainer.samples_per_class={m} needs "
                    f"{batch_size // m} distinct classes per batch, but the training split has "
                    f"only {classes} classes"
                )
        _check_world(batch_size, m, world_size)
        self.batch_size, self.m, self.seed, self.epoch = batch_size, m, seed, 0
        self.rank, self.world_size = rank, world_size
        self.local_batch = batch_size // world_size

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order __iter__ yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = self._balanced(gen) if self.m else torch.randperm(len(self.labels), generator=gen)
        for b in range(len(self)):
            start = b * self.batch_size + self.rank * self.local_batch
            yield order[start : start + self.local_batch].tolist()

    def positions(self, batch: int) -> range:
        """Positions in the epoch's global order of this rank's share of batch `batch`."""
        start = batch * self.batch_size + self.rank * self.local_batch
        return range(start, start + self.local_batch)

    def _balanced(self, gen: torch.Generator) -> torch.Tensor:
        # Classes are visited in random order, pass after pass; each visit contributes a chunk
        # of m images (drawn with replacement when the class has fewer). A batch is filled
        # with the earliest pending chunks whose class it does not hold yet, so a batch that
        # straddles two passes never gets a class twice. When the passes already line up
        # (no batch would repeat a class), every pick is the next chunk in pass order and the
        # order is the plain concatenation of the passes, as before this rule existed.
        classes = self.labels.unique()
        members = {int(c): (self.labels == c).nonzero().flatten() for c in classes}
        pending: list[tuple[int, torch.Tensor]] = []

        def one_pass() -> None:
            for c in classes[torch.randperm(len(classes), generator=gen)].tolist():
                idx = members[c]
                pick = (
                    torch.randint(len(idx), (self.m,), generator=gen)
                    if len(idx) < self.m
                    else torch.randperm(len(idx), generator=gen)[: self.m]
                )
                pending.append((c, idx[pick]))

        chunks = []
        per_batch = self.batch_size // self.m
        for _ in range(len(self)):
            held: set[int] = set()
            while len(held) < per_batch:
                # the constructor guarantees >= per_batch classes, so a fresh pass always
                # brings a class this batch lacks
                j = next((j for j, (c, _) in enumerate(pending) if c not in held), None)
                if j is None:
                    one_pass()
                    continue
                c, chunk = pending.pop(j)
                held.add(c)
                chunks.append(chunk)
        return torch.cat(chunks)

    def state_dict(self) -> dict:
        """Seed and epoch: all that determines the order."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        """Restore seed and epoch."""
        self.seed, self.epoch = state["seed"], state["epoch"]


def _check_world(batch_size: int, m: int, world_size: int) -> None:
    """The global batch must split evenly over the ranks (into whole classes when balanced)."""
    share = batch_size // world_size
    if batch_size % world_size or (m and share % m):
        unit = f"{world_size * m} ({world_size} x trainer.samples_per_class={m})" if m else ""
        raise DmlError(
            f"trainer.batch_size={batch_size} (the global batch) cannot be split over "
            f"{world_size} processes: expected a multiple of {unit or world_size}"
        )


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
            pos = b.positions(i)
            yield [(j, augment_seed(b.seed, b.epoch, p)) for p, j in zip(pos, batch)]
