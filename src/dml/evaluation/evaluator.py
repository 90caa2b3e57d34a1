"""Scores a model on a run's evaluation loaders: each epoch's test (and val) metrics.

What is computed depends on the run's task (dml.tasks): Recall@K and MAP@R of the embeddings,
the test queries searched against a gallery where the benchmark has one (In-Shop), or the
top-1 accuracy of the loss's classifier. Under torchrun every rank embeds its shard, rank 0
scores the gathered set and every rank gets its numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dml.errors import DivergedError
from dml.evaluation.classify import predict, top1_accuracy
from dml.evaluation.embed import compute_embeddings
from dml.evaluation.recall import retrieval_metrics
from dml.training import distributed


@dataclass(frozen=True)
class EvalSettings:
    """The eval group's values the scores depend on."""

    ks: list[int]
    map_at_r: bool
    flip: bool
    feature: str


class Evaluator:
    """The metrics of a run's evaluation splits, as its task scores them."""

    def __init__(self, task, model, loss, loaders: dict, device: torch.device, settings) -> None:
        self.task, self.model, self.loss = task, model, loss
        self.loaders, self.device, self.settings = loaders, device, settings

    def __call__(self, epoch: int) -> dict:
        """An epoch's test metrics, with the val split's under "val" when there is one."""
        out = self.metrics("test")
        if "val" in self.loaders:
            out["val"] = self.metrics("val")
        return out

    def metrics(self, split: str, feature: str | None = None) -> dict[str, float]:
        """The task's metrics of one split (feature: the retrieval feature, default eval's)."""
        return self.task.score(self, split, feature or self.settings.feature)

    def retrieval(self, split: str, feature: str) -> dict[str, float]:
        """Recall@K and MAP@R of a split's embeddings (against the gallery for test queries
        when the benchmark has one)."""
        emb, labels = self.embed(split, feature)
        gallery = {}
        if split == "test" and "gallery" in self.loaders:
            gallery = dict(zip(("gallery", "gallery_labels"), self.embed("gallery", feature)))
        if not distributed.is_main():
            return distributed.from_main(None)  # evaluated once, on rank 0
        s = self.settings
        return distributed.from_main(
            retrieval_metrics(emb, labels, list(s.ks), s.map_at_r, **gallery)
        )

    def top1(self, split: str) -> dict[str, float]:
        """Top-1 accuracy of the loss's classifier on a split."""
        loader = self.loaders[split]
        out = distributed.gathered(
            predict(self.model, self.loss.classifier, loader, self.device, self.settings.flip)
        )
        return distributed.from_main(top1_accuracy(*out) if distributed.is_main() else None)

    def embed(self, split: str, feature: str) -> tuple:
        """A split's features and labels; on a GPU the features stay there and are searched
        there (dml.evaluation.recall)."""
        keep = self.device.type == "cuda" and not distributed.active()
        emb, labels = distributed.gathered(
            compute_embeddings(
                self.model, self.loaders[split], self.device, self.settings.flip, feature, keep
            )
        )
        if not bool(torch.isfinite(torch.as_tensor(emb)).all()):  # weights diverged late
            raise DivergedError(
                f"the {split} embeddings became NaN or inf; lower the learning rate "
                "(checkpoints already saved are intact)"
            )
        return emb, labels
