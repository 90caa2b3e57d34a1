"""Plot the AutoLR diagnostics of one run (results.json, section "autolr").

Usage: python scripts/plot_autolr.py <run_dir>

Writes into <run_dir>/plots/:
  autolr_variation.png  weight variation per unit of each epoch's accepted trial (paper Fig. 2)
  autolr_lr.png         per-unit LRs: one line per epoch, and each unit's LR across epochs
  autolr_trials.png     trials per epoch, every trial's score and the epoch's threshold
  autolr_heatmap.png    unit x epoch heatmap of log10 LR
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from dml.cli import run_command
from dml.errors import DmlError
from dml.logging.figures import png_bytes, write_png
from dml.logging.runs import RESULTS_FILE, NotAnObjectError, read_run_results

VARIATION_DISPLAY_SCALE = 1e6  # the reference code prints v x 1e6; only the display uses it
EPOCH_CMAP = "viridis"
UNIT_CMAP = "turbo"
DPI = 120


class PlotError(DmlError):
    """A problem with the run directory or its diagnostics, reported as one line."""


@dataclass
class AutoLRLog:
    """The "autolr" section of results.json, with nulls turned into NaN."""

    units: list[str]
    epochs: list[int]
    lr: np.ndarray  # (E, K)
    variation: np.ndarray  # (E, K), NaN where a unit was left out
    scores: list[float]
    thresholds: list[float]
    trial_counts: list[int]
    capped: list[bool]
    trials: list[dict[str, Any]]


# ------------------------------------------------------------------ loading


def _row(values: Any, k: int, where: str) -> np.ndarray:
    """One per-unit list as floats; None and non-numbers become NaN."""
    if not isinstance(values, list) or len(values) != k:
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise PlotError(f"{where} should be a list of {k} values (one per unit), got {got}")
    return np.array([_num(x) for x in values], dtype=float)


def _num(x: Any) -> float:
    """A number as float, anything else (null, text) as NaN."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return math.nan
    return float(x)


def read_autolr(run_dir: Path) -> AutoLRLog:
    """Read and check the "autolr" section of <run_dir>/results.json."""
    try:
        results = read_run_results(run_dir)
    except NotAnObjectError:
        results = {}  # a JSON list or number: reported, as before, as a run without the section
    section = results.get("autolr")
    if not section:
        raise PlotError(f"run {run_dir} has no AutoLR diagnostics (lr_policy was not autolr)")
    return _parse_section(section, run_dir / RESULTS_FILE)


def _parse_section(section: Any, path: Path) -> AutoLRLog:
    """Turn the raw section into arrays, naming the first malformed field."""
    if not isinstance(section, dict):
        raise PlotError(f"{path}: 'autolr' should be an object")
    units = section.get("units")
    epochs = section.get("epochs")
    if not isinstance(units, list) or not units:
        raise PlotError(f"{path}: autolr.units should be a non-empty list of unit names")
    if not isinstance(epochs, list) or not epochs:
        raise PlotError(f"{path}: autolr.epochs is empty: no AutoLR epoch was recorded")
    k = len(units)
    try:
        lr = np.stack([_row(e["lr"], k, f"autolr.epochs[{i}].lr") for i, e in enumerate(epochs)])
        variation = np.stack(
            [_row(e["variation"], k, f"autolr.epochs[{i}].variation") for i, e in enumerate(epochs)]
        )
        log = AutoLRLog(
            units=[str(u) for u in units],
            epochs=[int(e["epoch"]) for e in epochs],
            lr=lr,
            variation=variation,
            scores=[_num(e.get("score")) for e in epochs],
            thresholds=[_num(e.get("threshold")) for e in epochs],
            trial_counts=[int(e.get("trials") or 0) for e in epochs],
            capped=[bool(e.get("capped")) for e in epochs],
            trials=[t for t in section.get("trials") or [] if isinstance(t, dict)],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlotError(f"{path}: malformed autolr.epochs entry ({exc!r})") from None
    # Zero variation marks an excluded unit: a gap reads better than a point on the axis.
    log.variation[log.variation == 0] = np.nan
    return log


# ----------------------------------------------------------------- plotting


def _epoch_colours(epochs: Sequence[int]) -> ScalarMappable:
    """A colour scale over the epochs (safe for a single epoch)."""
    lo, hi = min(epochs), max(epochs)
    return ScalarMappable(Normalize(lo, hi if hi > lo else lo + 1), colormaps[EPOCH_CMAP])


def _unit_axis(ax: Any, units: Sequence[str]) -> None:
    """Units 1..K on x, labelled by name, rotated when there are many."""
    ax.set_xticks(range(1, len(units) + 1))
    ax.set_xticklabels(
        units, rotation=45 if len(units) > 8 else 0, ha="right" if len(units) > 8 else "center"
    )
    ax.set_xlim(0.5, len(units) + 0.5)
    ax.set_xlabel("unit (forward order)")


def plot_variation(log: AutoLRLog) -> Figure:
    """Paper Figure 2: each epoch's accepted weight variation over the units."""
    fig = Figure(figsize=(8, 4.8), layout="constrained")
    ax = fig.add_subplot()
    colours = _epoch_colours(log.epochs)
    x = np.arange(1, len(log.units) + 1)
    for epoch, v in zip(log.epochs, log.variation, strict=True):
        ax.plot(x, v * VARIATION_DISPLAY_SCALE, "-o", ms=3, lw=1.3, color=colours.to_rgba(epoch))
    _unit_axis(ax, log.units)
    ax.set_ylabel(r"weight variation $v_k \times 10^{6}$")
    ax.set_title("AutoLR: weight variation of the accepted trial per epoch")
    ax.grid(alpha=0.3)
    if np.isnan(log.variation).any():
        ax.set_xlabel("unit (forward order); gaps: units left out (no variation)")
    fig.colorbar(colours, ax=ax, label="epoch")
    return fig


def plot_lr(log: AutoLRLog) -> Figure:
    """Per-unit LRs: a profile per epoch, and each unit's LR across the epochs."""
    fig = Figure(figsize=(13, 4.8), layout="constrained")
    by_unit, by_epoch = fig.subplots(1, 2)
    lr = np.where(log.lr > 0, log.lr, np.nan)  # log axis: non-positive LRs cannot be drawn
    colours = _epoch_colours(log.epochs)
    x = np.arange(1, len(log.units) + 1)
    for epoch, row in zip(log.epochs, lr, strict=True):
        by_unit.plot(x, row, "-o", ms=3, lw=1.3, color=colours.to_rgba(epoch))
    _unit_axis(by_unit, log.units)
    by_unit.set_yscale("log")
    by_unit.set_ylabel("learning rate")
    by_unit.set_title("LR profile over units, one line per epoch")
    by_unit.grid(alpha=0.3, which="both")
    fig.colorbar(colours, ax=by_unit, label="epoch")

    cmap = colormaps[UNIT_CMAP]
    k = len(log.units)
    for j, name in enumerate(log.units):
        colour = cmap(0.05 + 0.9 * j / max(k - 1, 1))
        by_epoch.plot(log.epochs, lr[:, j], "-o", ms=3, lw=1.3, color=colour, label=name)
    by_epoch.set_yscale("log")
    by_epoch.set_xlabel("epoch")
    by_epoch.set_ylabel("learning rate")
    by_epoch.set_title("LR of each unit across epochs")
    by_epoch.grid(alpha=0.3, which="both")
    by_epoch.legend(
        fontsize="small", ncol=2 if k > 8 else 1, loc="center left", bbox_to_anchor=(1.0, 0.5)
    )
    return fig


def _trial_dots(log: AutoLRLog) -> tuple[list[float], list[float], list[bool]]:
    """x (epoch, spread by trial), score and acceptance of every recorded trial."""
    by_epoch: dict[float, list[dict[str, Any]]] = {}
    for t in log.trials:
        epoch, score = _num(t.get("epoch")), _num(t.get("score"))
        if not (math.isnan(epoch) or math.isnan(score)):
            by_epoch.setdefault(epoch, []).append(t)
    xs, ys, accepted = [], [], []
    for epoch, group in by_epoch.items():
        n = len(group)
        group.sort(key=lambda t: _num(t.get("trial")))
        for j, t in enumerate(group):
            # Spread the dots across the bar so the trials of one epoch stay apart.
            xs.append(epoch + (0.0 if n == 1 else -0.3 + 0.6 * j / (n - 1)))
            ys.append(_num(t.get("score")))
            accepted.append(bool(t.get("accepted")))
    return xs, ys, accepted


def plot_trials(log: AutoLRLog) -> Figure:
    """Trials per epoch (bars), the score of every trial (dots) and each epoch's threshold."""
    fig = Figure(figsize=(min(max(8, 0.3 * len(log.epochs) + 4), 14), 5), layout="constrained")
    ax = fig.add_subplot()
    bar_colours = ["#f4a582" if c else "#bdd7e7" for c in log.capped]
    ax.bar(log.epochs, log.trial_counts, width=0.8, color=bar_colours, edgecolor="#6b8fb5")
    ax.set_xlabel("epoch")
    ax.set_ylabel("trials (training passes)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max(max(log.trial_counts), 1) * 1.15)
    if len(log.epochs) <= 25:
        ax.set_xticks(log.epochs)

    scores = ax.twinx()
    xs, ys, accepted = _trial_dots(log)
    if not xs:  # no per-trial log: show the accepted score of each epoch
        xs, ys, accepted = list(log.epochs), list(log.scores), [True] * len(log.epochs)
    acc = np.array(accepted, dtype=bool)
    xs_a, ys_a = np.array(xs), np.array(ys)
    scores.scatter(xs_a[~acc], ys_a[~acc], s=22, facecolors="none", edgecolors="#b2182b", zorder=3)
    scores.scatter(xs_a[acc], ys_a[acc], s=26, color="#1a9850", zorder=3)
    scores.hlines(
        log.thresholds,
        np.array(log.epochs) - 0.4,
        np.array(log.epochs) + 0.4,
        colors="black",
        lw=1.5,
    )
    finite = ys_a[np.isfinite(ys_a)]
    # Scores lie in [0, 1]; widen only if a malformed log holds something below.
    scores.set_ylim(min(0.0, finite.min() if finite.size else 0.0) - 0.02, 1.05)
    scores.set_ylabel("sorting score")
    ax.set_title("AutoLR: trials per epoch, trial scores and acceptance threshold")
    handles = _trials_legend(any(log.capped))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize="small")
    return fig


def _trials_legend(capped: bool) -> list[Any]:
    """Legend entries for the trials figure."""
    handles: list[Any] = [
        Patch(facecolor="#bdd7e7", edgecolor="#6b8fb5", label="trials"),
        Line2D([], [], ls="", marker="o", color="#1a9850", label="accepted trial score"),
        Line2D([], [], ls="", marker="o", mfc="none", mec="#b2182b", label="rejected trial score"),
        Line2D([], [], color="black", lw=1.5, label="threshold"),
    ]
    if capped:
        handles.insert(1, Patch(facecolor="#f4a582", edgecolor="#6b8fb5", label="trial cap hit"))
    return handles


def plot_heatmap(log: AutoLRLog) -> Figure:
    """Unit x epoch heatmap of log10 LR."""
    n_e, k = len(log.epochs), len(log.units)
    fig = Figure(
        figsize=(min(max(6, 0.5 * n_e + 3), 12), max(4, 0.35 * k + 1.5)), layout="constrained"
    )
    ax = fig.add_subplot()
    with np.errstate(divide="ignore", invalid="ignore"):
        grid = np.where(log.lr > 0, np.log10(log.lr), np.nan).T  # (K, E)
    image = ax.imshow(
        np.ma.masked_invalid(grid), aspect="auto", cmap="magma", interpolation="nearest"
    )
    ax.set_yticks(range(k))
    ax.set_yticklabels(log.units)
    ax.set_ylabel("unit")
    step = max(1, n_e // 20)
    ax.set_xticks(range(0, n_e, step))
    ax.set_xticklabels([str(e) for e in log.epochs[::step]])
    ax.set_xlabel("epoch")
    if n_e * k <= 200 and np.isfinite(grid).any():
        _annotate(ax, grid)
    ax.set_title("AutoLR: log10 learning rate per unit and epoch")
    fig.colorbar(image, ax=ax, label=r"$\log_{10}$ LR")
    return fig


def _annotate(ax: Any, grid: np.ndarray) -> None:
    """Write each cell's value, dark on light cells and light on dark ones."""
    lo, hi = np.nanmin(grid), np.nanmax(grid)
    mid = (lo + hi) / 2
    for (row, col), value in np.ndenumerate(grid):
        if np.isfinite(value):
            colour = "black" if value > mid else "white"
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)


# --------------------------------------------------------------------- main

FIGURES = {
    "autolr_variation.png": plot_variation,
    "autolr_lr.png": plot_lr,
    "autolr_trials.png": plot_trials,
    "autolr_heatmap.png": plot_heatmap,
}


def render(log: AutoLRLog) -> dict[str, bytes]:
    """All figures as PNG bytes, so nothing is written unless every one renders."""
    return {name: png_bytes(plot(log), DPI) for name, plot in FIGURES.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (argparse exits with status 2 on bad usage)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="run directory holding results.json")
    return parser.parse_args(argv)


def write_plots(args: argparse.Namespace) -> int:
    """Write every figure of the run into <run_dir>/plots, printing each path."""
    pngs = render(read_autolr(args.run_dir))
    for name, data in pngs.items():
        print(write_png(data, args.run_dir / "plots" / name))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Plot a run's AutoLR diagnostics into <run_dir>/plots; return the exit code."""
    # PlotError, and read_run_results' and write_png's own
    return run_command(write_plots, parse_args, argv, code=2, prog="plot_autolr")
