"""Epoch selection protocols and the held-out validation classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dml.data.records import Split
from dml.errors import DmlError
from dml.evaluation.selection import holdout_classes, select_epoch


def split_of(labels: list[int]) -> Split:
    return Split([Path(f"img{i}.jpg") for i in range(len(labels))], labels)


def test_holdout_takes_the_last_classes_by_id():
    """Catches val classes leaking into training, or a share computed on images not classes."""
    # 10 classes (ids 1..10), class 10 has 5 images, the others 1: 20% of classes -> 9 and 10
    labels = [7, 3, 10, 10, 10, 10, 10, 1, 2, 4, 5, 6, 8, 9]
    train, val = holdout_classes(split_of(labels), 0.2)
    assert sorted(set(val.labels)) == [9, 10]
    assert sorted(set(train.labels)) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert len(val) == 6 and len(train) == 8
    assert {p.name for p in val.paths} == {f"img{i}.jpg" for i in (2, 3, 4, 5, 6, 13)}


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1, 0.05, 0.95])
def test_holdout_rejects_shares_that_leave_a_side_empty(share):
    """Catches a val set of 0-1 classes (Recall@K undefined) or a train set of 0-1 classes."""
    with pytest.raises(DmlError, match="eval.val_classes"):
        holdout_classes(split_of(list(range(1, 11))), share)


HISTORY = [
    {"epoch": 0, "R@1": 0.50, "lr": {"unit1": 1e-3}, "val": {"R@1": 0.70, "R@2": 0.8}},
    {"epoch": 1, "R@1": 0.60, "lr": {"unit1": 1e-3}, "val": {"R@1": 0.75, "R@2": 0.9}},
    {"epoch": 2, "R@1": 0.65, "lr": {"unit1": 1e-4}, "val": {"R@1": 0.75, "R@2": 0.9}},
    {"epoch": 3, "R@1": 0.62, "lr": {"unit1": 1e-4}, "val": {"R@1": 0.72, "R@2": 0.9}},
]


def test_val_protocol_picks_best_val_earliest_tie():
    """Catches selection by test R@1 under val, or the latest of tied epochs."""
    sel = select_epoch(HISTORY, "val")
    assert sel["protocol"] == "val" and sel["epoch"] == 1
    assert sel["test"] == {"R@1": 0.60} and sel["val"] == {"R@1": 0.75, "R@2": 0.9}


def test_test_protocol_picks_best_test():
    """Catches the paper protocol reporting the last epoch instead of the best test epoch."""
    sel = select_epoch(HISTORY, "test")
    assert sel == {"protocol": "test", "epoch": 2, "test": {"R@1": 0.65}}


def test_unknown_protocol_is_a_one_line_error():
    """Catches a typo such as eval.selection=valid silently meaning test."""
    with pytest.raises(
        DmlError, match=r"eval.selection='valid': expected one of \['test', 'val'\]"
    ):
        select_epoch(HISTORY, "valid")


def test_holdout_images_keeps_every_class_on_both_sides():
    """Bug: classification's val split taken by class (val classes the classifier never saw),
    a class left without a training image, or the wrong images held out."""
    from dml.evaluation.selection import holdout_images

    labels = [1] * 10 + [2] * 3 + [3] * 2
    split = Split([Path(f"{i}.jpg") for i in range(len(labels))], labels)
    train, val = holdout_images(split, 0.1)
    # class 1: round(1.0) = 1 image (the last, 9); class 2: round(0.3) -> at least 1 (12);
    # class 3: round(0.2) -> 1 (14)
    assert [p.name for p in val.paths] == ["9.jpg", "12.jpg", "14.jpg"]
    assert val.labels == [1, 2, 3]
    assert sorted(set(train.labels)) == [1, 2, 3] and len(train) == 12
    train, val = holdout_images(split, 0.5)
    # 5 of 10, round(1.5) = 2 of 3, 1 of 2 (never all of a class)
    assert val.labels == [1] * 5 + [2] * 2 + [3]


def test_holdout_images_refuses_a_single_image_class():
    """Bug: a class with one image silently vanishing from training."""
    from dml.evaluation.selection import holdout_images

    split = Split([Path("a.jpg"), Path("b.jpg"), Path("c.jpg")], [1, 1, 2])
    with pytest.raises(DmlError, match="class 2 has 1 training image"):
        holdout_images(split, 0.2)
