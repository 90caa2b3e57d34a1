"""The γ ratio of supplement Table 1 for a config or a run (see dml.diagnostics.gamma).

python scripts/gamma_ratio.py [train.py overrides ...] [--out DIR]
python scripts/gamma_ratio.py <run dir> [key=value ...] [--checkpoint last|best|start]

With overrides, the snapshot is the config's pretrained start (what Table 1 measures: the
first AutoLR update); with a run dir, the run's own config and its checkpoint (last by
default; start = the pretrained weights). The same epoch runs twice from that snapshot on
the same batches: at the single LR (optimizer.lr) and at the LRs of one Eq. 16 update.
Writes gamma_ratio.md, gamma_ratio.json and gamma_ratio.png into --out (default: the run
dir, or outputs/gamma/<time>) and prints the markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dml.cli import compose_train, run_command
from dml.config import with_schema_defaults
from dml.diagnostics.gamma import gamma_table, measure_gamma, plot_gamma
from dml.errors import DmlError
from dml.files import write_json
from dml.launch import ROOT
from dml.logging import RESULTS_FILE
from dml.run import build_parts
from dml.training.checkpoint import load_checkpoint

OUTPUT = ("gamma_ratio.md", "gamma_ratio.json", "gamma_ratio.png")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("args", nargs="*", help="train.py overrides, or a run dir then key=value")
    parser.add_argument("--out", type=Path, default=None, help="folder for the table and PNG")
    parser.add_argument(
        "--checkpoint",
        choices=("last", "best", "start"),
        default="last",
        help="with a run dir: which weights are the snapshot (start: the pretrained ones)",
    )
    return parser.parse_args(argv)


def from_run(run_dir: Path, overrides: list[str], which: str) -> tuple[DictConfig, dict | None]:
    """The run's config (with key=value overrides) and the chosen checkpoint's weights."""
    results = run_dir / RESULTS_FILE
    if not results.is_file():
        raise DmlError(f"{run_dir} holds no {RESULTS_FILE}: expected a dml run folder")
    cfg = with_schema_defaults(json.loads(results.read_text())["config"])
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    if which == "start":
        return cfg, None
    path = run_dir / "checkpoints" / f"{which}.pt"
    if not path.is_file():
        raise DmlError(f"no checkpoint {path}: use --checkpoint start or another run")
    return cfg, load_checkpoint(path)


def run(args: argparse.Namespace) -> int:
    """Measure, print and write the table, JSON and PNG."""
    first = Path(args.args[0]) if args.args else None
    if first is not None and "=" not in args.args[0]:
        if not first.is_dir():
            raise DmlError(f"{first} is not a folder: expected a run dir or key=value overrides")
        cfg, state = from_run(first, args.args[1:], args.checkpoint)
        out = args.out or first
        source = f"run {first}, {args.checkpoint} weights"
    else:
        cfg, state = compose_train(args.args), None
        out = args.out or ROOT / "outputs" / "gamma" / time.strftime("%Y-%m-%d_%H-%M-%S")
        source = "pretrained start" + (f" ({' '.join(args.args)})" if args.args else "")
    with build_parts(cfg, pretrained=state is None) as parts:
        units = measure_gamma(
            parts,
            cfg.autolr,
            cfg.optimizer.lr,
            state,
            cfg.logger.progress,
            cfg.trainer.max_steps_per_epoch,
        )
    what = (
        f"{cfg.dataset.name}, {cfg.model.arch}, {len(units)} units, {source}; "
        f"alpha {cfg.autolr.alpha:g}, beta {cfg.autolr.beta:g}"
    )
    table = f"γ ratio, ours ({what}):\n\n" + gamma_table(units)
    out.mkdir(parents=True, exist_ok=True)
    md, js, png = (out / name for name in OUTPUT)
    md.write_text(table + "\n")
    write_json(js, {"source": what, "units": units})
    plot_gamma(units, png, f"γ per unit: {what}")
    print(table)
    print(f"\nwrote {md}, {js}, {png}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """One-line errors for user mistakes, as train.py gives them."""
    errors = (DmlError, HydraException, OmegaConfBaseException)
    return run_command(run, parse_args, argv, errors=errors)
