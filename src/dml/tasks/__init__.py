"""Tasks: retrieval and classification, each registered in TASKS by its module."""

from dml.registry import import_submodules
from dml.tasks.base import TASKS, Task, get_task, register_task

import_submodules(__name__)  # every task module registers itself

__all__ = ["TASKS", "Task", "get_task", "register_task"]
