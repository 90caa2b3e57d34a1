"""Which epoch a run reports: the paper's test-watching protocol or a held-out validation set."""

from __future__ import annotations

from dml.data.records import Split
from dml.errors import DmlError

PROTOCOLS = ("test", "val")
#: The metric each task ranks epochs by and reports first.
TASK_METRIC = {"retrieval": "R@1", "classification": "top1"}


def holdout_classes(split: Split, share: float) -> tuple[Split, Split]:
    """(train, val): the last round(share * C) classes of the split, by class id, become val.

    The paper's retrieval splits are by class, so validation is too: val classes are
    unseen in training, as the test classes are.
    """
    if not 0.0 < share < 1.0:
        raise DmlError(f"eval.val_classes={share}: expected a share strictly between 0 and 1")
    classes = sorted(set(split.labels))
    n_val = round(share * len(classes))
    if n_val < 2 or len(classes) - n_val < 2:
        raise DmlError(
            f"eval.val_classes={share} of {len(classes)} training classes leaves {n_val} val "
            f"and {len(classes) - n_val} train classes: each side needs at least 2"
        )
    val_ids = set(classes[-n_val:])
    keep = [i for i, y in enumerate(split.labels) if y not in val_ids]
    held = [i for i, y in enumerate(split.labels) if y in val_ids]
    return _subset(split, keep), _subset(split, held)


def holdout_images(split: Split, share: float) -> tuple[Split, Split]:
    """(train, val) for classification: the last round(share * n) images of each class
    (at least one, never all) become val, so val has the training classes, as test does."""
    if not 0.0 < share < 1.0:
        raise DmlError(f"eval.val_images={share}: expected a share strictly between 0 and 1")
    rows: dict[int, list[int]] = {}
    for i, y in enumerate(split.labels):
        rows.setdefault(y, []).append(i)
    held: set[int] = set()
    for y, idx in rows.items():
        if len(idx) < 2:
            raise DmlError(
                f"class {y} has {len(idx)} training image: eval.selection=val under "
                "task=classification needs at least 2 per class (or use eval.selection=test)"
            )
        n_val = min(len(idx) - 1, max(1, round(share * len(idx))))
        held.update(idx[-n_val:])
    keep = [i for i in range(len(split)) if i not in held]
    return _subset(split, keep), _subset(split, sorted(held))


def _subset(split: Split, rows: list[int]) -> Split:
    return Split([split.paths[i] for i in rows], [split.labels[i] for i in rows])


def check_protocol(protocol: str) -> None:
    """One-line error for an eval.selection value that is not a protocol."""
    if protocol not in PROTOCOLS:
        raise DmlError(f"eval.selection='{protocol}': expected one of {list(PROTOCOLS)}")


def select_epoch(history: list[dict], protocol: str, metric: str = "R@1") -> dict:
    """The reported epoch: best test `metric` (protocol test) or best val `metric` (val).

    Ties go to the earliest epoch. Returns {"protocol", "epoch", "test", and "val" for val}.
    """
    check_protocol(protocol)
    if not history:
        raise ValueError("no epochs to select from")
    best = max(
        range(len(history)), key=lambda i: (selection_score(history[i], protocol, metric), -i)
    )
    row = history[best]
    out = {"protocol": protocol, "epoch": row["epoch"], "test": test_metrics(row)}
    if protocol == "val":
        out["val"] = dict(row["val"])
    return out


def selection_score(row: dict, protocol: str, metric: str = "R@1") -> float:
    """What the protocol ranks a history row by: val `metric` (val) or test `metric` (test)."""
    return row["val"][metric] if protocol == "val" else row[metric]


def test_metrics(row: dict) -> dict[str, float]:
    """The test-set metrics of a history row (Recall@K, MAP@R or top1), without val, lr, loss."""
    return {k: v for k, v in row.items() if k.startswith(("R@", "MAP", "top1"))}
