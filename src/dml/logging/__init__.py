"""Run outputs: TensorBoard scalars, results.json and console tables."""

from dml.logging.results import RESULTS_FILE, recall_table, write_results
from dml.logging.tensorboard import ScalarLogger

__all__ = ["RESULTS_FILE", "ScalarLogger", "recall_table", "write_results"]
