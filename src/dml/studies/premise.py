"""Does AutoLR's premise hold on this dataset and backbone? (scripts/premise.py)

AutoLR (Ro & Choi 2021) assumes what ImageNet -> CUB shows: the pretrained low layers hold
general features that fine-tuning should barely move, the upper layers must adapt, and one
epoch at a single LR already moves the low units least. It then sets each unit's LR from the
line between alpha * min(v0) and beta * max(v0). Where the premise fails, the same rule slows
down layers that the data needs to move. The measurements, from short single-LR runs:

* ``v0``: each unit's weight variation over AutoLR's first trial (one epoch, one LR), measured
  by the controller itself; ``v0_spread`` = max / min over the units, and ``first_update``:
  the factors Eq. 16 applies to unit 1 and to the top unit at the first rejection
  (t_k / v_k with the alpha/beta line; ImageNet -> CUB, from the paper's Table 1: 0.16 and
  4.3).
* ``transfer_ratio``: R@1 of the pretrained pooled features over R@1 after single-LR
  fine-tuning.
* ``freeze_lower_cost``, ``freeze_stem_lower_cost``, ``freeze_upper_cost``: R@1 points lost
  with units 1..K//2, the stem and those, or the top K//2 units frozen (single LR).

The verdict is one line: the premise holds when every TARGETS bound is met, else it names
each bound missed and what it means for AutoLR.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from dml.autolr.rules import initial_targets
from dml.cli import compose_train
from dml.errors import InfeasibleError
from dml.files import write_json
from dml.run import prepare

# (op, bound): ">=" / "<=" a number, or "between" (low, high)
TARGETS: dict[str, tuple[str, float | tuple[float, float]]] = {
    "transfer_ratio": (">=", 0.6),
    "freeze_stem_lower_cost": ("<=", 1.5),
    "freeze_upper_cost": (">=", 3.0),
    "v0_spread": ("between", (6.0, 20.0)),
}
FROZEN = ("freeze_lower", "freeze_stem_lower", "freeze_upper")


def frozen_groups(units: int) -> dict[str, list[str]]:
    """The groups each freeze run holds fixed: the lower or upper K // 2 units, or the stem
    with the lower ones (the stem is not a unit)."""
    half = units // 2
    lower = [f"unit{k}" for k in range(1, half + 1)]
    return {
        "freeze_lower": lower,
        "freeze_stem_lower": ["stem", *lower],
        "freeze_upper": [f"unit{k}" for k in range(units - half + 1, units + 1)],
    }


def run_plan(units: int, seeds: int, extra: Sequence[str] = ()) -> dict[str, list[str]]:
    """Run name -> train.py overrides: a single-LR run and the three freeze runs per seed."""
    runs = {}
    for seed in range(seeds):
        runs[f"constant_seed{seed}"] = ["lr_policy=constant", *extra, f"seed={seed}"]
        for name, groups in frozen_groups(units).items():
            runs[f"{name}_seed{seed}"] = [
                "lr_policy=constant",
                f"trainer.freeze=[{','.join(groups)}]",
                *extra,
                f"seed={seed}",
            ]
    return runs


def first_update(v0: Sequence[float], alpha: float, beta: float) -> dict:
    """Eq. 16's factors t_k / v_k for unit 1 and the top unit at epoch 0's first rejection
    (targets on the line from alpha * min(v0) to beta * max(v0)); infeasible bounds say so."""
    try:
        targets = initial_targets(list(v0), alpha, beta)
    except InfeasibleError:
        return {"unit1": None, "top": None, "feasible": False}
    return {"unit1": targets[0] / v0[0], "top": targets[-1] / v0[-1], "feasible": True}


def premise_metrics(
    finals: dict[str, list[float]],
    pooled: float,
    v0s: Sequence[Sequence[float]],
    alpha: float,
    beta: float,
) -> dict:
    """The premise metrics from final R@1 points per seed ({"constant", *FROZEN}), the
    pretrained pooled R@1 and the v0 of each seed."""
    single = statistics.fmean(finals["constant"])
    v0 = [statistics.fmean(col) for col in zip(*v0s, strict=True)]
    active = [x for x in v0 if x > 0]
    return {
        "pooled_R@1": pooled,
        "single_lr_R@1": single,
        "transfer_ratio": pooled / single,
        **{f"{name}_cost": single - statistics.fmean(finals[name]) for name in FROZEN},
        "v0": v0,
        "v0_spread": max(active) / min(active) if active else None,
        "first_update": first_update(v0, alpha, beta),
        "alpha": alpha,
        "beta": beta,
    }


def meets(value: float | None, op: str, bound: float | tuple[float, float]) -> bool:
    """Whether value meets (op, bound)."""
    if value is None:
        return False
    if op == "between":
        low, high = bound
        return low <= value <= high
    return value >= bound if op == ">=" else value <= bound


def verdict(metrics: dict, units: int, targets: dict = TARGETS) -> dict:
    """{"holds", "passed": {metric: bool}, "line"}: the premise's verdict in one line."""
    passed = {k: meets(metrics.get(k), op, b) for k, (op, b) in targets.items()}
    if all(passed.values()):
        line = (
            f"premise holds: freezing the stem and units 1-{units // 2} costs "
            f"{metrics['freeze_stem_lower_cost']:.1f} points, freezing the top {units // 2} "
            f"units {metrics['freeze_upper_cost']:.1f}, and one LR moves the units over a "
            f"{metrics['v0_spread']:.0f}x range: AutoLR's layer-wise LRs fit this data"
        )
    else:
        reasons = [_reason(k, metrics, units) for k, ok in passed.items() if not ok]
        line = "premise does not hold: " + "; ".join(reasons)
    return {"holds": all(passed.values()), "passed": passed, "line": line}


def _reason(key: str, m: dict, units: int) -> str:
    """What a missed bound means for AutoLR, with its numbers."""
    up = m["first_update"]
    if key == "transfer_ratio":
        return (
            f"the pretrained features transfer little (R@1 {m['pooled_R@1']:.1f} before, "
            f"{m['single_lr_R@1']:.1f} after single-LR fine-tuning; ratio "
            f"{m['transfer_ratio']:.2f} < 0.6), so every layer has to be rebuilt"
        )
    if key == "freeze_stem_lower_cost":
        cut = f" (its first update: unit 1 x{up['unit1']:.2f})" if up["feasible"] else ""
        return (
            f"the low layers still need to learn: freezing the stem and units 1-{units // 2} "
            f"costs {m['freeze_stem_lower_cost']:.1f} points (> 1.5), and AutoLR slows them{cut}"
        )
    if key == "freeze_upper_cost":
        return (
            f"the upper layers need little adapting: freezing the top {units // 2} units "
            f"costs {m['freeze_upper_cost']:.1f} points (< 3)"
        )
    spread = m["v0_spread"]
    moves = (
        f": its first update moves unit 1 x{up['unit1']:.2f} and unit {units} x{up['top']:.1f}"
        if up["feasible"]
        else f": alpha {m['alpha']} and beta {m['beta']} are infeasible there"
    )
    shown = "none" if spread is None else f"{spread:.0f}x"
    return f"one LR moves the units over a {shown} range (outside 6-20x){moves}"


# -- measuring ---------------------------------------------------------------------------
def kept_units(cfg) -> int:
    """Units in play after pruning for this config's backbone."""
    from dml.models import build_torchvision, make_backbone, units_to_keep

    net = build_torchvision(cfg.model.arch, cfg.model.last_stride, cfg.dataset.image_size)
    total = make_backbone(net).num_units
    return units_to_keep(total, list(cfg.pruning.units), cfg.pruning.remove_last)


def measure_v0(cfg) -> list[float]:
    """AutoLR's first trial on this config (lr_policy=autolr), run by the controller itself:
    each unit's weight variation over one epoch at the single starting LR, the paper's v0."""
    from dml.autolr.variation import weight_variation
    from dml.logging import ScalarLogger
    from dml.policies import build_policy
    from dml.run import build_parts, make_trainer

    with tempfile.TemporaryDirectory() as tmp, build_parts(cfg) as parts:
        policy = build_policy(cfg)
        logger = ScalarLogger(Path(tmp), enabled=False)
        trainer = make_trainer(cfg, parts, policy, Path(tmp), logger, save_checkpoints=False)
        policy.begin_epoch(0)
        trainer.train_epoch(0, 0)
        return weight_variation(parts.model.backbone, policy.start)


def final_r1(results: dict) -> float:
    """A run's last-epoch test R@1 in points."""
    return 100 * results["history"][-1]["R@1"]


# -- the command line --------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="where to write the metrics")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each single-LR run")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 of each run")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (a GPU: 4)")
    parser.add_argument("--out", type=Path, default=None, help="run folders")
    parser.add_argument("overrides", nargs="*", help="train.py overrides: data, backbone, ...")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.seeds < 1 or args.parallel < 1:
        parser.error("--epochs, --seeds and --parallel take integers >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure, judge, write the JSON, print the metrics and the verdict line."""
    from dml.errors import DmlError
    from dml.launch import ROOT, run_many

    args = parse_args(argv)
    out = (args.out or ROOT / "outputs" / "premise" / time.strftime("%Y-%m-%d_%H-%M-%S")).resolve()
    start = time.time()
    try:
        # as the runs: every training class trains (no val hold-out), the last epoch is read
        base = [*args.overrides, "lr_policy=autolr", "eval.selection=test"]
        cfg = compose_train(base)
        units = kept_units(cfg)
        prepare(compose_train(base))  # the data and a pretrained source, made once
        v0s = [measure_v0(compose_train([*base, f"seed={s}"])) for s in range(args.seeds)]
    except (DmlError, HydraException, OmegaConfBaseException) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    extra = [f"trainer.epochs={args.epochs}", "eval.selection=test", *args.overrides]
    results = run_many(run_plan(units, args.seeds), out, extra, args.parallel, tag="premise")
    finals = {
        kind: [final_r1(results[f"{kind}_seed{s}"]) for s in range(args.seeds)]
        for kind in ("constant", *FROZEN)
    }
    pooled = 100 * results["constant_seed0"]["metrics"]["initial"]["R@1"]
    metrics = premise_metrics(finals, pooled, v0s, cfg.autolr.alpha, cfg.autolr.beta)
    judged = verdict(metrics, units)
    report = {
        "overrides": args.overrides,
        "units": units,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "runs_dir": str(out),
        **metrics,
        "final_R@1": finals,
        "targets": {k: f"{op} {b}" for k, (op, b) in TARGETS.items()},
        "passed": judged["passed"],
        "holds": judged["holds"],
        "verdict": judged["line"],
        "wall_time_s": round(time.time() - start, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, report)
    print_report(report)
    return 0


def print_report(report: dict) -> None:
    """The metrics, a line each, then the verdict."""
    up = report["first_update"]
    print(
        f"transfer_ratio {report['transfer_ratio']:.3f} (pooled R@1 {report['pooled_R@1']:.2f}"
        f" / single-LR R@1 {report['single_lr_R@1']:.2f})"
    )
    for name in FROZEN:
        print(f"{name}_cost {report[f'{name}_cost']:.2f} points")
    spread = report["v0_spread"]
    print(f"v0_spread {spread:.1f}x" if spread else "v0_spread: no unit moved")
    if up["feasible"]:
        print(f"first Eq. 16 update: unit 1 x{up['unit1']:.3f}, top unit x{up['top']:.2f}")
    print(report["verdict"])
