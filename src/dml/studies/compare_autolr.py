"""Why does AutoLR trail a single LR on the twin: its LR profile or its trial machinery?

    python scripts/compare_autolr.py [--seeds 3] [--json F] [--md F] [--out DIR] [overrides ...]

Five arms on the default twin (`python train.py`'s recipe, 10 epochs, eval.selection=val: R@1
is test R@1 at the epoch of best val R@1), each a train.py run per seed:

* ``constant``: one LR for every unit.
* ``autolr``: AutoLR (rerun mode), x0.2 at 3/4 of the epochs.
* ``autolr_keep_momentum``: the same with autolr.reset_momentum=false (momentum kept across
  trials and epochs, as the single-LR runs keep it).
* ``replay``: the autolr run's per-group, per-epoch LRs replayed as a plain loop
  (lr_policy=replay, same seed): AutoLR's profile without trials, re-runs or resets.
* ``constant_reset``: one LR with the momentum cleared at every epoch start
  (optimizer.reset_momentum=true), as AutoLR clears it at every trial.

If replay matches autolr, the loss comes from the LR profile the paper's rule picks on this
data; if it matches constant, the trial machinery costs it. Finished runs are reused.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from dml.cli import compose_train
from dml.files import write_json
from dml.launch import ROOT, run_summary, run_train
from dml.launch import summarise_runs as summarise
from dml.run import prepare

ARMS = ("constant", "autolr", "autolr_keep_momentum", "replay", "constant_reset")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "compare_autolr")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--md", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="train.py overrides for every run")
    return parser.parse_args(argv)


def arm_overrides(arm: str, epochs: int, out: Path, seed: int) -> list[str]:
    """train.py overrides of one arm (replay reads the same seed's autolr run in out)."""
    drop = max(1, round(0.75 * epochs))
    autolr = ["lr_policy=autolr", f"autolr.drop_epoch={drop}"]
    return {
        "constant": ["lr_policy=constant"],
        "autolr": autolr,
        "autolr_keep_momentum": [*autolr, "autolr.reset_momentum=false"],
        "replay": ["lr_policy=replay", f"lr_policy.run={out / f'autolr_seed{seed}'}"],
        "constant_reset": ["lr_policy=constant", "optimizer.reset_momentum=true"],
    }[arm]


def compare(seeds: int, out: Path, overrides: list[str]) -> dict:
    """Every arm's runs (autolr before replay, which reads it) and their summaries."""
    epochs = compose_train(overrides).trainer.epochs
    prepare(compose_train(overrides))
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for arm in ARMS:  # "autolr" comes before "replay"
        for seed in range(seeds):
            args = [*arm_overrides(arm, epochs, out, seed), f"seed={seed}", *overrides]
            run = run_train(f"{arm}_seed{seed}", args, out, tag="compare")
            results[arm].append(run_summary(run))
    rows = {arm: summarise(runs) for arm, runs in results.items()}
    return {"epochs": epochs, "seeds": seeds, "overrides": overrides, "arms": rows}


def reading(rows: dict) -> str:
    """Which of constant and autolr the replay is closer to, in R@1 points and stds."""
    d = {arm: rows[arm]["R@1_mean"] for arm in ("constant", "autolr", "replay")}
    spread = statistics.fmean(rows[a]["R@1_std"] for a in ("constant", "autolr", "replay"))
    to_autolr, to_constant = abs(d["replay"] - d["autolr"]), abs(d["replay"] - d["constant"])
    closer = "autolr" if to_autolr < to_constant else "constant"
    cause = "the LR profile AutoLR picks" if closer == "autolr" else "the trial machinery"
    return (
        f"replay {d['replay']:.2f} is {to_autolr:.2f} points from autolr {d['autolr']:.2f} and "
        f"{to_constant:.2f} from constant {d['constant']:.2f} (mean std {spread:.2f}): "
        f"closer to {closer}, pointing at {cause}"
    )


def markdown(report: dict) -> str:
    """The comparison as a Markdown table."""
    lines = [
        "| arm | R@1 (mean ± std) | wall s | passes per epoch | runs |",
        "|---|---|---|---|---|",
    ]
    for arm, row in report["arms"].items():
        runs = ", ".join(f"{r['R@1']:.2f}" for r in row["runs"])
        lines.append(
            f"| {arm} | {row['R@1_mean']:.2f} ± {row['R@1_std']:.2f} | {row['wall_s']:.0f} | "
            f"{row['passes_per_epoch']:.2f} | {runs} |"
        )
    return "\n".join(lines) + f"\n\n{report['reading']}\n"


def main(argv: list[str] | None = None) -> int:
    """Run what is missing, print and write the table."""
    args = parse_args(argv)
    report = compare(args.seeds, args.out.resolve(), args.overrides)
    report["reading"] = reading(report["arms"])
    text = markdown(report)
    print(text)
    if args.json:
        write_json(args.json, report)
    if args.md:
        args.md.write_text(text)
    return 0
