"""Plot the LR schedules compared in supplement E (its Figure 2), and optionally AutoLR's LRs.

Usage: python scripts/plot_schedules.py [<run_dir>] [--out file.png] [--epochs 50]
           [--l-max 1e-3] [--l-min 1e-4] [--drop-epoch 30] [--gamma 0.1]
           [--cycles 3] [--resets 2]

Draws the backbone LR against the epoch for step decay, cyclic and SGDR, each taken
from the real policy code: the config is composed with Hydra as train.py composes it,
the policy is built by dml.policies.build_policy and driven step by step over a real
SGD optimizer. With <run_dir>, a fourth panel shows that AutoLR run's per-unit LRs per
epoch from its results.json. Writes <run_dir>/schedules.png, or ./schedules.png without
a run directory, unless --out is given.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from omegaconf import DictConfig

import dml.config  # noqa: F401  (registers the schemas the config groups extend)
from dml.cli import compose_train, run_command
from dml.errors import DmlError
from dml.launch import ROOT
from dml.logging.figures import png_bytes, write_png
from dml.logging.runs import RESULTS_FILE, read_run_results
from dml.policies import build_policy
from dml.policies.base import PolicyContext
from dml.training.param_groups import GroupInfo

CONFIG_DIR = ROOT / "configs"
STEPS_PER_EPOCH = 20  # samples per epoch: enough for smooth triangles and cosines
SCHEDULES = ("step", "cyclic", "sgdr")
TITLES = {"step": "Step-decay", "cyclic": "Cyclic", "sgdr": "SGDR"}
UNIT_CMAP = "turbo"
DPI = 120
# the groups a schedule distinguishes: the backbone (stem, unit) and the head
GROUPS = [GroupInfo("stem", "stem"), GroupInfo("unit1", "unit", 0), GroupInfo("head", "head")]


class PlotError(Exception):
    """A problem with the arguments or the run directory, reported as one line."""


@dataclass
class Curve:
    """The backbone LR of one schedule at each optimisation step, and its parameters."""

    t: np.ndarray  # continuous epoch time epoch + step / steps_per_epoch
    lr: np.ndarray
    label: str


@dataclass
class AutoLRRun:
    """The per-unit LRs of each accepted AutoLR epoch of one run."""

    units: list[str]
    epochs: np.ndarray  # (E,)
    lr: np.ndarray  # (E, K)


# ------------------------------------------------------------------ schedules


def drive_schedule(cfg: DictConfig, steps_per_epoch: int = STEPS_PER_EPOCH) -> Curve:
    """Run cfg's LR policy over a real SGD for trainer.epochs and record the unit group's LR."""
    policy = build_policy(cfg)
    initial = {"stem": cfg.optimizer.lr, "unit1": cfg.optimizer.lr, "head": cfg.optimizer.head_lr}
    param_groups = [
        {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": initial[g.name]} for g in GROUPS
    ]
    for group in param_groups:
        group["initial_lr"] = group["lr"]
    optimizer = torch.optim.SGD(param_groups, lr=cfg.optimizer.lr)
    epochs = int(cfg.trainer.epochs)
    policy.setup(
        PolicyContext(
            optimizer=optimizer,
            groups=GROUPS,
            backbone=None,  # schedules never look at the model
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            snapshot=lambda: None,
            restore=lambda token: None,
            echo=lambda line: None,
        )
    )
    t, lr = [], []
    unit = [g.name for g in GROUPS].index("unit1")
    for epoch in range(epochs):
        policy.begin_epoch(epoch)
        for step in range(steps_per_epoch):
            policy.step(epoch, step)
            t.append(epoch + step / steps_per_epoch)
            lr.append(optimizer.param_groups[unit]["lr"])
        policy.end_epoch(epoch)
    return Curve(np.array(t), np.array(lr), "")


def schedule_curves(
    epochs: int = 50,
    l_max: float = 1e-3,
    l_min: float = 1e-4,
    drop_epoch: int = 30,
    gamma: float = 0.1,
    cycles: int = 3,
    resets: int = 2,
    steps_per_epoch: int = STEPS_PER_EPOCH,
) -> dict[str, Curve]:
    """Backbone LR per step of step decay, cyclic and SGDR, from the composed configs."""
    if epochs < 1:
        raise PlotError(f"--epochs={epochs} is out of range: expected an integer >= 1")
    # optimizer.lr sets l_max through the YAMLs' `l_max: ${optimizer.lr}`, as a user would
    common = [f"optimizer.lr={l_max!r}", f"trainer.epochs={epochs}"]
    extra = {
        "step": [f"lr_policy.drop_epoch={drop_epoch}", f"lr_policy.gamma={gamma!r}"],
        "cyclic": [f"lr_policy.l_min={l_min!r}", f"lr_policy.cycles={cycles}"],
        "sgdr": [f"lr_policy.l_min={l_min!r}", f"lr_policy.resets={resets}"],
    }
    labels = {
        "step": f"$t_d$ = {drop_epoch}, $\\gamma$ = {gamma:g}",
        "cyclic": f"{cycles} cycle(s)",
        "sgdr": f"{resets} reset(s)",
    }
    curves = {}
    for name in SCHEDULES:
        cfg = compose_train([f"lr_policy={name}", *common, *extra[name]])
        curve = drive_schedule(cfg, steps_per_epoch)
        curve.label = labels[name]
        curves[name] = curve
    return curves


# ---------------------------------------------------------------- AutoLR run


def read_autolr_run(run_dir: Path) -> AutoLRRun:
    """The per-unit LR of each epoch in the "autolr" section of <run_dir>/results.json."""
    results = read_run_results(run_dir)
    path = run_dir / RESULTS_FILE
    section = results.get("autolr")
    if not isinstance(section, dict) or not section:
        raise PlotError(f"run {run_dir} has no autolr section (lr_policy was not autolr)")
    units, epochs = section.get("units"), section.get("epochs")
    if not isinstance(units, list) or not units:
        raise PlotError(f"{path}: autolr.units should be a non-empty list of unit names")
    if not isinstance(epochs, list) or not epochs:
        raise PlotError(f"{path}: autolr.epochs is empty: no AutoLR epoch was recorded")
    rows, numbers = [], []
    for i, record in enumerate(epochs):
        row = record.get("lr") if isinstance(record, dict) else None
        if not isinstance(row, list) or len(row) != len(units):
            raise PlotError(f"{path}: autolr.epochs[{i}].lr should list {len(units)} LRs")
        if not all(_is_number(x) for x in row) or not _is_number(record.get("epoch")):
            raise PlotError(f"{path}: autolr.epochs[{i}] has a non-numeric epoch or lr")
        rows.append([float(x) for x in row])
        numbers.append(int(record["epoch"]))
    return AutoLRRun([str(u) for u in units], np.array(numbers), np.array(rows))


def _is_number(x: Any) -> bool:
    """A JSON number (booleans are not)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# ----------------------------------------------------------------- plotting


def plot(curves: dict[str, Curve], run: AutoLRRun | None = None) -> Figure:
    """Supplement Figure 2: one panel per schedule, plus the AutoLR run's per-unit LRs."""
    n = len(curves) + (run is not None)
    rows = 2 if n == 4 else 1  # four panels read better as a square than as a strip
    cols = -(-n // rows)
    fig = Figure(figsize=(4.6 * cols + (1.0 if run else 0.0), 3.8 * rows), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    top = max(float(c.lr.max()) for c in curves.values())
    for ax, (name, curve) in zip(axes, curves.items()):
        ax.plot(curve.t, curve.lr, lw=1.6, color="#2166ac")
        ax.set_title(f"{TITLES.get(name, name)} ({curve.label})")
        ax.set_xlim(0, curve.t[-1] + (curve.t[1] - curve.t[0] if len(curve.t) > 1 else 1))
        ax.set_ylim(0, top * 1.1)  # one LR scale so the schedules compare at a glance
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in axes[::cols]:
        ax.set_ylabel("backbone learning rate")
    if run is not None:
        _plot_autolr(axes[-1], run)
    return fig


def _plot_autolr(ax: Any, run: AutoLRRun) -> None:
    """Each unit's LR as a staircase: AutoLR holds an epoch's LRs for the whole epoch."""
    # repeat the last row one epoch on so the final epoch's LR shows as a step, not a point
    x = np.append(run.epochs, run.epochs[-1] + 1)
    lr = np.where(run.lr > 0, run.lr, np.nan)  # log axis: non-positive LRs cannot be drawn
    lr = np.vstack([lr, lr[-1:]])
    cmap, k = colormaps[UNIT_CMAP], len(run.units)
    for j, name in enumerate(run.units):
        colour = cmap(0.05 + 0.9 * j / max(k - 1, 1))
        ax.plot(x, lr[:, j], drawstyle="steps-post", lw=1.3, color=colour, label=name)
    ax.set_yscale("log")
    ax.set_xlim(x[0], x[-1])
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title("AutoLR (per unit, recorded run)")
    ax.grid(alpha=0.3, which="both")
    ncol = 2 if k > 8 else 1
    ax.legend(fontsize="x-small", ncol=ncol, loc="center left", bbox_to_anchor=(1, 0.5))


def render(curves: dict[str, Curve], run: AutoLRRun | None = None) -> bytes:
    """The figure as PNG bytes, drawn with Agg whatever the default backend."""
    return png_bytes(plot(curves, run), DPI)


# --------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (argparse exits with status 2 on bad usage)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?", help="AutoLR run with results.json")
    parser.add_argument("--out", type=Path, help="PNG to write (default <run_dir>/schedules.png)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--l-max", type=float, default=1e-3)
    parser.add_argument("--l-min", type=float, default=1e-4)
    parser.add_argument("--drop-epoch", type=int, default=30, help="step decay's t_d")
    parser.add_argument("--gamma", type=float, default=0.1, help="step decay's factor")
    parser.add_argument("--cycles", type=int, default=3, help="cyclic's number of cycles")
    parser.add_argument("--resets", type=int, default=2, help="SGDR's number of resets")
    return parser.parse_args(argv)


def draw(args: argparse.Namespace) -> int:
    """Write the figure the options ask for and print its path."""
    run = read_autolr_run(args.run_dir) if args.run_dir is not None else None
    curves = schedule_curves(
        args.epochs, args.l_max, args.l_min, args.drop_epoch, args.gamma, args.cycles,
        args.resets,
    )  # fmt: skip
    png = render(curves, run)
    print(write_png(png, args.out or (args.run_dir or Path.cwd()) / "schedules.png"))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Write the schedules figure; return the exit code (2 with a one-line error)."""
    errors = (PlotError, DmlError)
    return run_command(draw, parse_args, argv, errors=errors, code=2, prog="plot_schedules")
