"""task=retrieval: train on some classes, Recall@K and MAP@R on unseen ones (the paper's)."""

from __future__ import annotations

from dml.evaluation.selection import holdout_classes
from dml.tasks.base import Task, register_task


def _eval_classes(data) -> dict:
    """Queries and gallery (In-Shop) are compared by label: one mapping over both."""
    if data.gallery is None:
        return {}
    union = sorted(set(data.test.labels) | set(data.gallery.labels))
    shared = {c: i for i, c in enumerate(union)}
    return {"test": shared, "gallery": shared}


def _score(evaluator, split: str, feature: str) -> dict[str, float]:
    return evaluator.retrieval(split, feature)


RETRIEVAL = register_task(
    Task(
        name="retrieval",
        metric="R@1",
        title="Recall@K (%) on the test classes",
        holdout=lambda train, eval_cfg: holdout_classes(train, eval_cfg.val_classes),
        eval_classes=_eval_classes,
        score=_score,
        searches=True,
        val_classes="held-out classes",
    )
)
