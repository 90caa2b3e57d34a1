"""task=classification: top-1 accuracy of the softmax classifier on the dataset's FGVC split
(supplement Table 3): every class in train and test, disjoint images."""

from __future__ import annotations

from dml.errors import DmlError
from dml.evaluation.selection import holdout_images
from dml.tasks.base import Task, register_task


def _eval_classes(data) -> dict:
    """Test labels are scored with the classifier's indices, the training classes'."""
    return {"test": {c: i for i, c in enumerate(sorted(set(data.train.labels)))}}


def _score(evaluator, split: str, feature: str) -> dict[str, float]:
    return evaluator.top1(split)


def _check(cfg) -> None:
    from dml.losses import LOSSES

    with_classifier = [n for n, e in LOSSES.items() if e.info.get("classifier")]
    if cfg.loss.name not in with_classifier:
        raise DmlError(
            f"task=classification with loss={cfg.loss.name}: classification trains and "
            f"scores a loss's classifier; expected loss={' or '.join(with_classifier)}"
        )


CLASSIFICATION = register_task(
    Task(
        name="classification",
        metric="top1",
        title="Top-1 accuracy (%) on the test images (the training classes)",
        holdout=lambda train, eval_cfg: holdout_images(train, eval_cfg.val_images),
        eval_classes=_eval_classes,
        score=_score,
        check=_check,
        val_classes="training classes",
    )
)
