"""Layer-wise LR baselines beside AutoLR, on ResNet-18 and ViT-tiny: R@1, wall time, passes.

    python scripts/compare_layerwise.py [--quick] [--seeds 3] [--backbones resnet18 vit_tiny]
        [--decays 0.5 0.65 0.8 0.9] [--out outputs/compare_layerwise]
        [--json F] [--md F] [--png F] [overrides ...]

Methods: constant, step, llrd, gradual_unfreeze, autorgn, AutoLR rerun and AutoLR probe,
each a train.py run per seed with eval.selection=val (R@1 is test R@1 at the epoch of best
val R@1). Every LR drop falls at 3/4 of the epochs, as in the paper: step (x0.1), the three
layer-wise baselines (lr_policy.shape=step, x0.1) and AutoLR (autolr.drop_epoch). llrd's
decay is chosen per backbone on seed 0's val R@1 among --decays (ties: the first listed);
its seeds then run with that decay. --quick uses bench.py's twin (32 px, 20 images per
class, 4-epoch source pre-training). Finished runs are reused, so a stopped comparison
continues. Prints a Markdown table and draws R@1 against wall time, one point per method
and backbone (error bars: sample std over seeds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dml.cli import compose_train
from dml.files import write_json
from dml.launch import QUICK_TWIN, ROOT, run_summary, run_train
from dml.launch import summarise_runs as summarise
from dml.run import prepare

METHODS = (
    "constant",
    "step",
    "llrd",
    "gradual_unfreeze",
    "autorgn",
    "autolr_rerun",
    "autolr_probe",
)
LAYERWISE = ("llrd", "gradual_unfreeze", "autorgn")
BACKBONES = ("resnet18", "vit_tiny")
DECAYS = (0.5, 0.65, 0.8, 0.9)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="bench.py's 32 px twin")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--backbones", nargs="+", choices=BACKBONES, default=list(BACKBONES))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--decays", nargs="+", type=float, default=list(DECAYS))
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "compare_layerwise")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--md", type=Path, default=None)
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="train.py overrides for every run")
    return parser.parse_args(argv)


def drop_epoch(epochs: int) -> int:
    """The epoch every schedule drops its LR at: 3/4 of the run, at least 1."""
    return max(1, round(0.75 * epochs))


def method_overrides(method: str, epochs: int, decay: float | None = None) -> list[str]:
    """train.py overrides of one method (llrd needs its decay)."""
    drop = drop_epoch(epochs)
    if method == "constant":
        return ["lr_policy=constant"]
    if method == "step":
        return ["lr_policy=step", f"lr_policy.drop_epoch={drop}"]
    if method in LAYERWISE:
        args = [f"lr_policy={method}", "lr_policy.shape=step", f"lr_policy.drop_epoch={drop}"]
        if method == "llrd":
            if decay is None:
                raise ValueError("llrd needs a decay")
            args.append(f"lr_policy.decay={decay}")
        return args
    if method.startswith("autolr_"):
        mode = method.removeprefix("autolr_")
        return ["lr_policy=autolr", f"autolr.drop_epoch={drop}", f"autolr.mode={mode}"]
    raise ValueError(f"unknown method {method!r}: expected one of {list(METHODS)}")


def choose_decay(val_r1: dict[float, float]) -> float:
    """The decay of highest val R@1; ties go to the first one listed."""
    best = max(val_r1.values())
    return next(d for d, v in val_r1.items() if v == best)


def _run(name: str, args: list[str], out: Path) -> dict:
    """One run's summary, with its val R@1 at the selected epoch (points)."""
    results = run_train(name, args, out, "compare")
    return {**run_summary(results), "val_R@1": 100 * results["selection"]["val"]["R@1"]}


def compare_backbone(backbone: str, args: argparse.Namespace, twin: list[str]) -> dict:
    """Every method's seeds on one backbone, llrd's decay chosen first."""
    base = [f"model={backbone}", *twin, "eval.selection=val"]
    epochs = compose_train(base).trainer.epochs
    prepare(compose_train(base))  # so no run's wall time holds the one-off source pre-training
    out = args.out / backbone
    decay, decay_val = None, {}
    if "llrd" in args.methods:
        for d in args.decays:
            overrides = [*method_overrides("llrd", epochs, d), *base, "seed=0"]
            decay_val[d] = _run(f"llrd{d}_seed0", overrides, out)["val_R@1"]
        decay = choose_decay(decay_val)
    methods = {}
    for method in args.methods:
        name = f"llrd{decay}" if method == "llrd" else method
        overrides = [*method_overrides(method, epochs, decay), *base]
        runs = [_run(f"{name}_seed{s}", [*overrides, f"seed={s}"], out) for s in range(args.seeds)]
        methods[method] = summarise(runs)
    return {"epochs": epochs, "decay": decay, "decay_val_R@1": decay_val, "methods": methods}


def label(method: str, decay: float | None) -> str:
    """A method's name in the table and the figure."""
    return f"llrd (decay {decay})" if method == "llrd" else method


def markdown(report: dict) -> str:
    """One row per backbone and method."""
    lines = [
        "| backbone | method | R@1 | wall s | passes per epoch | accepted epochs sorted |",
        "|---|---|---|---|---|---|",
    ]
    for backbone, b in report["backbones"].items():
        for method, m in b["methods"].items():
            agree = "—" if m["agreement"] is None else f"{100 * m['agreement']:.0f}%"
            lines.append(
                f"| {backbone} | {label(method, b['decay'])} "
                f"| {m['R@1_mean']:.2f} ± {m['R@1_std']:.2f} | {m['wall_s']:.0f} "
                f"| {m['passes_per_epoch']:.2f} | {agree} |"
            )
    for backbone, b in report["backbones"].items():
        if b["decay_val_R@1"]:
            vals = ", ".join(f"{d}: {v:.2f}" for d, v in b["decay_val_R@1"].items())
            lines.append(f"\nllrd decay on {backbone} (seed 0 val R@1): {vals}")
    return "\n".join(lines)


def plot(report: dict, out: Path) -> Path:
    """R@1 against wall time, one panel per backbone (its own R@1 scale), one colour per
    method; error bars are the sample std over seeds."""
    from matplotlib.figure import Figure

    from dml.logging.figures import save_png

    backbones = report["backbones"]
    fig = Figure(figsize=(5.5 * len(backbones), 4.8))
    axes = fig.subplots(1, len(backbones), squeeze=False)[0]
    markers = dict(zip(BACKBONES, ("o", "^"), strict=True))
    colours = {m: f"C{i}" for i, m in enumerate(METHODS)}
    for ax, (backbone, b) in zip(axes, backbones.items(), strict=True):
        for method, m in b["methods"].items():
            ax.errorbar(
                m["wall_s"],
                m["R@1_mean"],
                yerr=m["R@1_std"],
                fmt=markers[backbone],
                color=colours[method],
                markersize=8,
                capsize=3,
                label=label(method, b["decay"]),
            )
        ax.set_title(f"{backbone}, {report['seeds']} seeds")
        ax.set_xlabel("wall time per run (s, mean over seeds)")
        ax.set_ylabel("test R@1 (%) at the val-selected epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Layer-wise LR baselines and AutoLR on the synthetic twin")
    fig.tight_layout()
    return save_png(fig, out)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, write the JSON, Markdown and PNG, print the table."""
    args = parse_args(argv)
    twin = [*(QUICK_TWIN if args.quick else []), *args.overrides]
    report = {"seeds": args.seeds, "twin": twin, "backbones": {}}
    for backbone in args.backbones:
        report["backbones"][backbone] = compare_backbone(backbone, args, twin)
    table = markdown(report)
    print(table)
    if args.json:
        write_json(args.json, report)
    if args.md:
        args.md.write_text(table + "\n")
    if args.png:
        print(f"figure: {plot(report, args.png)}")
    return 0
