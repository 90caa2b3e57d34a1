"""Run outputs: TensorBoard scalars, results.json and console tables, and reading them back."""

from dml.logging.results import RESULTS_FILE, recall_table, write_results
from dml.logging.runs import Run, collect_runs, read_run, selected_metrics
from dml.logging.tensorboard import ScalarLogger

__all__ = [
    "RESULTS_FILE",
    "Run",
    "ScalarLogger",
    "collect_runs",
    "read_run",
    "recall_table",
    "selected_metrics",
    "write_results",
]
