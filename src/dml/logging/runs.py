"""Reading finished runs: results.json files under run or sweep folders.

Shared by scripts/aggregate_results.py and scripts/report.py (and the file finding and
reading by scripts/plot_alpha_beta.py); read_run_results by the scripts that read one run
(plot_autolr.py, plot_schedules.py, show_retrievals.py). Standard library only: no torch, no
dml.run, so the scripts that summarise a sweep start fast and this module never imports the
trainer.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dml.errors import DmlError
from dml.logging.results import RESULTS_FILE

METRICS = ("R@1", "R@2", "R@4", "R@8", "MAP@R", "top1")
# keys that name where things live, not what was run: they differ per job without meaning
IGNORED_TOP = {"hydra"}
IGNORED_LEAVES = {"root", "data_dir", "run_name", "dir", "path", "output_dir", "out_dir"}
IGNORED_SUFFIXES = ("_dir", "_path", "_root")
MISSING = "-"

__all__ = [
    "IGNORED_LEAVES",
    "IGNORED_SUFFIXES",
    "IGNORED_TOP",
    "METRICS",
    "MISSING",
    "RESULTS_FILE",
    "NotAnObjectError",
    "Run",
    "collect_runs",
    "find_results",
    "flatten",
    "format_value",
    "is_ignored",
    "load_results",
    "mean_std",
    "natural_key",
    "percent_cell",
    "read_run",
    "read_run_results",
    "selected_metrics",
]


class NotAnObjectError(DmlError, ValueError):
    """A results.json that is valid JSON but not an object (a list, a number, null)."""


@dataclass
class Run:
    """One job's results.json, its config flattened to dotted keys."""

    name: str
    status: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    protocol: str = "test"
    error: str = ""


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values."""
    if not isinstance(node, dict):
        return {prefix: node} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return flat


def is_ignored(key: str) -> bool:
    """True for keys that hold paths, run names or Hydra's own settings."""
    parts = key.split(".")
    leaf = parts[-1]
    return parts[0] in IGNORED_TOP or leaf in IGNORED_LEAVES or leaf.endswith(IGNORED_SUFFIXES)


def selected_metrics(results: dict) -> tuple[dict[str, float], str]:
    """The metrics a job reports and their protocol: selection.test, else metrics.best."""
    selection = results.get("selection")
    if isinstance(selection, dict) and isinstance(selection.get("test"), dict):
        return _numbers(selection["test"]), str(selection.get("protocol", "test"))
    metrics = results.get("metrics") or {}
    if metrics.get("best"):
        # before the selection block existed, best was picked on the test split
        return _numbers(metrics["best"]), "test via metrics.best"
    return _numbers(metrics.get("final") or {}), "test via metrics.final"


def _numbers(block: dict) -> dict[str, float]:
    return {k: float(v) for k, v in block.items() if isinstance(v, int | float) and k in METRICS}


def natural_key(text: str) -> list[int | str]:
    """Sort key putting job '10' after job '9' (digit runs compare as numbers)."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def find_results(root: Path) -> list[Path]:
    """Every results.json below root (nested at any depth), in natural order of its path."""
    return sorted(root.rglob(RESULTS_FILE), key=lambda p: natural_key(str(p.relative_to(root))))


def load_results(path: Path) -> dict[str, Any]:
    """A results.json as a dict; OSError or ValueError when it cannot be read as one."""
    # UnicodeDecodeError and JSONDecodeError are ValueErrors: one except clause for callers
    results = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(results, dict):
        raise NotAnObjectError(f"{path} holds a JSON {type(results).__name__}, not an object")
    return results


def read_run_results(run_dir: Path) -> dict[str, Any]:
    """<run_dir>/results.json as a dict; DmlError with a one-line reason when it cannot be."""
    if not run_dir.is_dir():
        raise DmlError(f"run directory not found: {run_dir}")
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        raise DmlError(f"no results.json in run {run_dir}")
    try:
        return load_results(path)
    except NotAnObjectError:
        raise  # already one line naming the file; a subclass so callers can tell it apart
    except json.JSONDecodeError as exc:
        raise DmlError(f"cannot read {path}: not valid JSON: {exc}") from None
    except (OSError, ValueError) as exc:  # ValueError: UnicodeDecodeError, a binary file
        raise DmlError(f"cannot read {path}: {exc}") from None


def collect_runs(roots: Sequence[Path]) -> list[Run]:
    """Every results.json below the given folders (nested at any depth), once each."""
    seen: set[Path] = set()
    runs: list[Run] = []
    for root in roots:
        for path in find_results(root):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            rel = path.parent.relative_to(root)
            # with several folders a bare job number would be ambiguous
            name = str(root / rel) if len(roots) > 1 else str(rel)
            runs.append(read_run(path, name))
    return runs


def read_run(path: Path, name: str) -> Run:
    """One results.json as a Run; an unreadable file becomes a run with that status."""
    try:
        results = load_results(path)
    except (OSError, ValueError) as exc:
        return Run(name=name, status="unreadable", error=f"{type(exc).__name__}: {exc}")
    metrics, protocol = selected_metrics(results)
    return Run(
        name=name,
        status=str(results.get("status", "unknown")),
        config=flatten(results.get("config") or {}),
        metrics=metrics,
        protocol=protocol,
        error=str(results.get("error") or ""),
    )


def format_value(value: Any) -> str:
    """A config value as a short cell: 0.001, [15,16], true."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for one value) of a non-empty sequence."""
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    # sample std, as scripts/check_synthetic.py's seed statistics: few seeds, unbiased variance
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def percent_cell(values: Sequence[float]) -> str:
    """Fractions as a percent cell: '68.10' for one value, '68.10 ± 0.57' for several."""
    if not values:
        return MISSING
    mean, std = mean_std([100 * v for v in values])
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {std:.2f}"
