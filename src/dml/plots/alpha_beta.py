"""Heatmap of test Recall@1 over AutoLR's alpha and beta (supplement, Figure 1).

Usage: python scripts/plot_alpha_beta.py <sweep_dir> [--out PNG] [--metric R@1]
           [--dataset cub200]

Reads every results.json below <sweep_dir> (a Hydra multirun: <sweep>/<n>/results.json)
whose config has lr_policy.name == autolr. The value of a run is selection.test[metric],
or metrics.final[metric] for results written before model selection existed, in percent.
(dml.reports.aggregate and dml.reports.tables fall back to metrics.best, the epoch picked on
the test split; this figure keeps the final epoch. The files are found and read by
dml.logging.runs.)
Runs with the same (alpha, beta) (different seeds) are averaged; n is the number averaged.
Cells whose runs were all infeasible (lower bound above upper bound) are hatched, cells
with no run are marked "no run", the best cell is outlined. Writes the PNG (default
<sweep_dir>/alpha_beta.png) and prints the grid as a table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from dml.cli import run_command
from dml.errors import DmlError
from dml.logging.figures import save_png
from dml.logging.runs import find_results, flatten, load_results

CMAP = "viridis"
DPI = 120
# Config keys expected to differ between the runs of one alpha x beta sweep.
SWEPT = {"autolr.alpha", "autolr.beta", "seed"}


class SweepError(DmlError):
    """A problem with the sweep directory, reported as one line."""


@dataclass(frozen=True)
class Run:
    """What the grid needs from one AutoLR run."""

    alpha: float
    beta: float
    status: str  # completed | infeasible | failed | ...
    value: float | None  # metric in percent; None unless completed with the metric


@dataclass
class Grid:
    """Cells indexed [beta row, alpha column]."""

    alphas: list[float]
    betas: list[float]
    mean: np.ndarray  # NaN where no completed run
    n: np.ndarray  # completed runs averaged per cell
    n_infeasible: np.ndarray  # infeasible runs per cell
    n_runs: np.ndarray  # runs of any status per cell (failed ones included)
    infeasible: np.ndarray  # bool: infeasible runs and no completed one

    @property
    def best(self) -> tuple[int, int] | None:
        """(row, col) of the highest mean, or None when no cell has a value."""
        if not np.isfinite(self.mean).any():
            return None
        row, col = np.unravel_index(np.nanargmax(self.mean), self.mean.shape)
        return int(row), int(col)


def build_grid(runs: Iterable[Run]) -> Grid:
    """Mean value per (alpha, beta) over completed runs, and the all-infeasible mask."""
    runs = list(runs)
    alphas = sorted({r.alpha for r in runs})
    betas = sorted({r.beta for r in runs})
    shape = (len(betas), len(alphas))
    total, n, n_inf = np.zeros(shape), np.zeros(shape, dtype=int), np.zeros(shape, dtype=int)
    n_runs = np.zeros(shape, dtype=int)
    for r in runs:
        i, j = betas.index(r.beta), alphas.index(r.alpha)
        n_runs[i, j] += 1
        if r.status == "infeasible":
            n_inf[i, j] += 1
        elif r.status == "completed" and r.value is not None:
            total[i, j] += r.value
            n[i, j] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return Grid(alphas, betas, mean, n, n_inf, n_runs, (n_inf > 0) & (n == 0))


# ------------------------------------------------------------------ loading


def lookup(config: Any, dotted: str) -> Any:
    """config['a']['b'] for 'a.b', or None."""
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def run_value(results: dict[str, Any], metric: str) -> float | None:
    """The run's metric in percent: selection.test, else metrics.final (older results)."""
    selection = results.get("selection")
    source = selection.get("test") if isinstance(selection, dict) else None
    if not isinstance(source, dict):
        source = lookup(results, "metrics.final")
    value = source.get(metric) if isinstance(source, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return 100.0 * float(value)


def varying_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Config keys, other than alpha, beta and seed, whose values differ between runs."""
    # JSON text of each leaf: lists stay whole and hashable, so they compare as values
    flats = [{k: json.dumps(v, sort_keys=True) for k, v in flatten(c).items()} for c in configs]
    keys = set().union(*flats) if flats else set()
    return sorted(k for k in keys - SWEPT if len({f.get(k) for f in flats}) > 1)


def collect(sweep: Path, metric: str, dataset: str | None = None) -> tuple[list[Run], list[str]]:
    """The AutoLR runs under sweep (of one dataset if given), and notes on what was skipped."""
    if not sweep.is_dir():
        raise SweepError(f"sweep directory not found: {sweep}")
    runs, configs, notes = [], [], []
    skipped: dict[str, int] = {}
    for path in find_results(sweep):
        try:
            results = load_results(path)
        except (OSError, ValueError):
            notes.append(f"skipped unreadable {path}")
            continue
        config = results.get("config")
        if lookup(config, "lr_policy.name") != "autolr":
            skipped["not AutoLR"] = skipped.get("not AutoLR", 0) + 1
            continue
        if dataset is not None and lookup(config, "dataset.name") != dataset:
            continue  # Figure 1's sweep holds CUB and Cars: one heatmap per dataset
        alpha, beta = lookup(config, "autolr.alpha"), lookup(config, "autolr.beta")
        if not all(isinstance(v, (int, float)) for v in (alpha, beta)):
            notes.append(f"skipped {path}: no numeric autolr.alpha/beta")
            continue
        status = str(results.get("status"))
        value = run_value(results, metric)
        if status not in ("completed", "infeasible"):
            skipped[f"status {status}"] = skipped.get(f"status {status}", 0) + 1
        elif status == "completed" and value is None:
            skipped[f"no {metric}"] = skipped.get(f"no {metric}", 0) + 1
        runs.append(Run(float(alpha), float(beta), status, value))
        configs.append(config)
    if not runs:
        only = f" on dataset {dataset}" if dataset else ""
        raise SweepError(f"no AutoLR runs (results.json with lr_policy autolr){only} under {sweep}")
    notes += [f"{count} run(s) not counted: {why}" for why, count in skipped.items()]
    mixed = varying_keys(configs)
    if mixed:
        shown = ", ".join(mixed[:5]) + (" ..." if len(mixed) > 5 else "")
        notes.append(f"runs also differ in {shown}: they are averaged together")
    return runs, notes


# ------------------------------------------------------------------ output


def fmt(x: float) -> str:
    """An alpha or beta as written in a sweep (2, 0.4, 1e-05)."""
    return f"{x:g}"


def table(grid: Grid, metric: str) -> str:
    """The grid as text: rows beta, columns alpha; 'mean (n=..)', infeasible, no result or '-'."""

    def cell(i: int, j: int) -> str:
        if grid.n[i, j]:
            extra = f", {grid.n_infeasible[i, j]} infeasible" if grid.n_infeasible[i, j] else ""
            return f"{grid.mean[i, j]:.2f} (n={grid.n[i, j]}{extra})"
        if grid.infeasible[i, j]:
            return "infeasible"
        return "no result" if grid.n_runs[i, j] else "-"

    cells = [[cell(i, j) for j in range(len(grid.alphas))] for i in range(len(grid.betas))]
    head = ["beta \\ alpha", *map(fmt, grid.alphas)]
    body = [[fmt(b), *row] for b, row in zip(grid.betas, cells)]
    widths = [max(len(r[c]) for r in [head, *body]) for c in range(len(head))]
    lines = [f"{metric} (%) of AutoLR runs, mean over seeds; rows beta, columns alpha"]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in [head, *body]]
    best = grid.best
    if best is None:
        lines.append("best: none (no completed run)")
    else:
        i, j = best
        lines.append(
            f"best: alpha={fmt(grid.alphas[j])} beta={fmt(grid.betas[i])} "
            f"{metric} {grid.mean[i, j]:.2f} (n={grid.n[i, j]})"
        )
    return "\n".join(lines)


def plot(grid: Grid, metric: str, title: str) -> Figure:
    """Heatmap: colour = mean value, hatched = infeasible, outline = best cell."""
    rows, cols = grid.mean.shape
    fig = Figure(
        figsize=(max(5.5, 1.1 * cols + 2.5), max(4.5, 0.75 * rows + 2.5)), layout="constrained"
    )
    ax = fig.add_subplot()
    finite = grid.mean[np.isfinite(grid.mean)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    norm = Normalize(lo, hi if hi > lo else lo + 1e-9)
    cmap = colormaps[CMAP].with_extremes(bad="white")
    # origin lower: beta grows upwards, as on a plot's y axis
    image = ax.imshow(np.ma.masked_invalid(grid.mean), cmap=cmap, norm=norm, origin="lower")
    for i in range(rows):
        for j in range(cols):
            _cell(ax, grid, i, j, norm)
    if grid.best is not None:
        i, j = grid.best
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=3, zorder=4))
    ax.set_xticks(range(cols), [fmt(a) for a in grid.alphas])
    ax.set_yticks(range(rows), [fmt(b) for b in grid.betas])
    ax.set_xlabel(r"$\alpha$ (lower bound: $\alpha \times \min_k v_0^{(k)}$)")
    ax.set_ylabel(r"$\beta$ (upper bound: $\beta \times \max_k v_0^{(k)}$)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label=f"{metric} (%)")
    handles = [Patch(fc="0.85", ec="0.4", hatch="///", label="infeasible (lower > upper)")]
    handles.append(Patch(fc="none", ec="red", lw=2, label="best"))
    if ((grid.n == 0) & ~grid.infeasible).any():
        handles.append(Patch(fc="white", ec="0.6", label="no run / no result"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    return fig


def _cell(ax: Any, grid: Grid, i: int, j: int, norm: Normalize) -> None:
    """Annotate one cell with its value and n, or mark it infeasible / empty."""
    if grid.n[i, j]:
        dark = norm(grid.mean[i, j]) < 0.6  # viridis is dark below ~60%
        text = f"{grid.mean[i, j]:.2f}\nn={grid.n[i, j]}"
        if grid.n_infeasible[i, j]:
            text += f" (+{grid.n_infeasible[i, j]} inf.)"
        ax.text(j, i, text, ha="center", va="center", fontsize=8,
                color="white" if dark else "black")  # fmt: skip
    elif grid.infeasible[i, j]:
        ax.add_patch(
            Rectangle((j - 0.5, i - 0.5), 1, 1, fc="0.85", ec="0.4", hatch="///", lw=0.5, zorder=2)
        )
        ax.text(j, i, "infeasible", ha="center", va="center", fontsize=7, zorder=3,
                bbox={"fc": "0.85", "ec": "none", "pad": 1})  # fmt: skip
    else:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fc="white", ec="0.6", lw=0.5, zorder=2))
        label = "no result" if grid.n_runs[i, j] else "no run"
        ax.text(j, i, label, ha="center", va="center", fontsize=7, color="0.5", zorder=3)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (argparse exits with status 2 on bad usage)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="folder holding the runs' results.json")
    parser.add_argument(
        "--out", type=Path, default=None, help="PNG (default <sweep>/alpha_beta.png)"
    )
    parser.add_argument("--metric", default="R@1", help="metric key, e.g. R@1, R@4, MAP@R")
    parser.add_argument(
        "--dataset", default=None, help="only runs of this dataset.name (e.g. cub200, cars196)"
    )
    return parser.parse_args(argv)


def report(args: argparse.Namespace) -> int:
    """Print the grid the options ask for, draw its heatmap and print the PNG's path."""
    runs, notes = collect(args.sweep_dir, args.metric, args.dataset)
    grid = build_grid(runs)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(table(grid, args.metric))
    title = f"AutoLR {args.metric} over alpha and beta: {args.dataset or args.sweep_dir.name}"
    out = args.out or args.sweep_dir / "alpha_beta.png"
    save_png(plot(grid, args.metric, title), out, DPI)
    print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print the alpha x beta grid of a sweep and draw its heatmap; return the exit code."""
    return run_command(report, parse_args, argv, code=2)  # SweepError, and save_png's own
