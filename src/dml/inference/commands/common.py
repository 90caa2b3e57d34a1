"""What more than one inference command does alike: the run options, timing, the run's name."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from dml.inference import LoadedRun

P = ParamSpec("P")
T = TypeVar("T")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """--checkpoint and --feature: which of the run's checkpoints, and which of its features."""
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument(
        "--feature",
        choices=("embedding", "pooled"),
        default=None,
        help="default: the run's eval.feature",
    )


def timed(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[T, float]:
    """work(*args, **kwargs) and the wall-clock seconds it took."""
    start = time.perf_counter()
    result = work(*args, **kwargs)
    return result, time.perf_counter() - start


def run_name(run: LoadedRun) -> str:
    """`run <run dir>, <checkpoint>.pt`: which model a summary line's numbers come from."""
    return f"run {run.run_dir}, {run.checkpoint}.pt"
