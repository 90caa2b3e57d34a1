"""What a task is: how its data splits, how its epochs are scored and ranked, what it needs.

The task config key (task=retrieval | classification) names an entry of TASKS; everything that
differs between tasks lives in its entry, so a run is composed without asking which task it
runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dml.data import RetrievalData, Split, load_data
from dml.registry import Entry, Registry


@dataclass(frozen=True)
class Task:
    """One task: its metric, its held-out split, its label maps and how it scores a split."""

    name: str
    metric: str  # what epochs are ranked by, and reported first
    title: str  # the heading of the summary table
    holdout: Callable[[Split, object], tuple[Split, Split]]  # (train split, eval group)
    eval_classes: Callable[[RetrievalData], dict[str, dict[int, int]]]
    score: Callable[..., dict[str, float]]  # (evaluator, split name, feature) -> metrics
    check: Callable[[object], None] = lambda cfg: None  # requirements on the other groups
    searches: bool = False  # scored by a nearest-neighbour search: eval.ks must fit the split
    val_classes: str = "classes"  # what the val split's classes are, for the start-up line
    data: str | None = None  # the kind of split it reads from a dataset (default: its name)

    def split(self, dataset_cfg, eval_cfg) -> tuple[RetrievalData, Split | None]:
        """The dataset's splits for this task; with eval.selection=val, part of the training
        split held out as val."""
        data = load_data(dataset_cfg, self.data or self.name)
        if eval_cfg.selection != "val":
            return data, None
        train, val = self.holdout(data.train, eval_cfg)
        return RetrievalData(train=train, test=data.test, gallery=data.gallery), val


TASKS = Registry("task", "task")


def register_task(task: Task) -> Task:
    """Add a task to TASKS (its entry's build is its scoring function)."""
    TASKS.add(Entry(task.name, None, task.score, info={"task": task}))
    return task


def get_task(name: str) -> Task:
    """The task named `name` (a one-line error listing the tasks otherwise)."""
    return TASKS.get(name).info["task"]
