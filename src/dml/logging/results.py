"""results.json (written atomically, so aggregators never read half a file) and console tables."""

from __future__ import annotations

from pathlib import Path

from dml.files import write_json

RESULTS_FILE = "results.json"


def write_results(run_dir: Path, results: dict) -> Path:
    """Write results.json into run_dir through a temporary file and a rename."""
    return write_json(run_dir / RESULTS_FILE, results, default=_jsonable)


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def recall_table(rows: dict[str, dict[str, float]]) -> str:
    """A fixed-width table of metrics in percent, one row per model state (e.g. before/after)."""
    keys = list(next(iter(rows.values())))
    width = max(28, *(len(name) + 2 for name in rows))
    head = f"{'':<{width}}" + "".join(f"{k:>8}" for k in keys)
    lines = [head]
    for name, metrics in rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{100 * metrics[k]:>8.2f}" for k in keys))
    return "\n".join(lines)
