"""Does the synthetic twin behave like ImageNet -> CUB? (scripts/check_synthetic.py)

Runs the twin (each run a train.py subprocess) with a single LR (constant), step decay and
AutoLR over several seeds, plus the premise runs of dml.studies.premise (single-LR runs with
the lower units, the stem with them, or the upper units frozen), and writes the metrics to a
JSON file:

    python scripts/check_synthetic.py --seeds 3 --json check.json
    python scripts/check_synthetic.py --scale paper --json paper.json   # on a GPU

Two scales:

* ``cpu`` (the default): the default twin of `python train.py` (ResNet-18 at 64 px, 10 epochs),
  with AutoLR's stem at 50x unit 1's LR as a diagnostic and per-unit linear probes of each
  target factor (seed 0). Step decay and AutoLR drop at 3/4 of the epochs (the paper's 30 of
  40). Its targets are TARGETS.
* ``paper``: the paper's CUB recipe (experiment=cub200_autolr: ResNet-50, pruning 15,16,
  224 px, softmax through the paper head, SGD) on a CUB-sized synthetic target (100 + 100
  classes of 59 images), its backbone pre-trained on a larger source (48 classes x 250
  images at 224 px) on the GPU; 8 epochs in bf16, step x0.5 and AutoLR x0.2 at 4/5 of them,
  one seed, two runs at a time. Its targets are the premise's (dml.studies.premise.TARGETS).
  Sized from the H200 measurements of scripts/gpu_check.py (a training pass 4.2 s, an
  evaluation 1.9 s, 29 s of fixed cost per run; pre-training 3,200 images/s): about 8
  minutes. Six runs at once did not finish in 5 minutes there: a batch-40 step is launch-
  bound, so processes sharing the GPU add little throughput.

Runs train on all training classes (eval.selection=test; the metrics read the final epoch).
Recall values in the JSON are in points (percent); seed_std is the sample std over seeds.
Exit code 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from dml.autolr.rules import sorting_score
from dml.cli import compose_train
from dml.errors import DmlError
from dml.files import write_json
from dml.launch import ROOT, results_status, run_many
from dml.run import prepare
from dml.studies import premise

POLICIES = ("constant", "step", "autolr")
TARGETS = {
    "transfer_ratio": (">=", 0.6),
    "freeze_lower_cost": ("<=", 2.0),
    "v0_score": ("<=", 0.3),
    "seed_std": ("<=", 1.5),
    "last_epoch_gain": ("<=", 1.0),
}
FACTORS = ("body", "cap", "wing", "bars", "tail", "crest")


@dataclass(frozen=True)
class Scale:
    """One size of the twin: its overrides, schedule drops, diagnostics and targets."""

    overrides: list[str] = field(default_factory=list)
    drop_at: float = 0.75  # step and AutoLR drop at this share of the epochs
    step_gamma: float | None = None  # None: lr_policy.gamma's own default
    stem_diagnostic: bool = True  # AutoLR with the stem at 50x unit 1's LR
    probes: bool = True
    parallel: int = 1
    targets: dict = field(default_factory=lambda: dict(TARGETS))
    premise_only: bool = False  # judge by the premise's targets alone


PAPER = [
    "experiment=cub200_autolr",
    "dataset=synthetic",
    "dataset.num_classes=200",
    "dataset.images_per_class=59",
    "dataset.generated_size=256",
    "dataset.image_size=224",
    "dataset.resize_size=256",
    "dataset.cache=ram",
    "dataset.num_workers=2",
    "model.pretrained=synthetic",
    "pretrain.images_per_class=250",
    "pretrain.batch_size=128",
    "trainer.epochs=8",
    "trainer.precision=bf16",
    "trainer.channels_last=true",
    "logger.tensorboard=false",
]
SCALES = {
    "cpu": Scale(),
    "paper": Scale(
        overrides=PAPER,
        drop_at=0.8,
        step_gamma=0.5,
        stem_diagnostic=False,
        probes=False,
        parallel=2,
        targets=dict(premise.TARGETS),
        premise_only=True,
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (cpu 3, paper 1)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the metrics")
    parser.add_argument("--out", type=Path, default=None, help="run folders")
    parser.add_argument("--parallel", type=int, default=None, help="runs at once")
    parser.add_argument(
        "--probe",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="per-unit linear probes of each target factor, before and after (seed 0)",
    )
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for every run")
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    args.seeds = args.seeds or (3 if args.scale == "cpu" else 1)
    args.parallel = args.parallel or scale.parallel
    args.probe = scale.probes if args.probe is None else args.probe
    return args


def twin_shape(overrides: list[str]) -> tuple[int, int]:
    """(units in play after pruning, epochs) of the twin with these overrides."""
    cfg = compose_train(overrides)
    return premise.kept_units(cfg), cfg.trainer.epochs


def plan_runs(seeds: int, units: int, epochs: int, scale: Scale = SCALES["cpu"]) -> dict:
    """Run name -> train.py overrides, for every run the check needs."""
    drop = max(1, round(scale.drop_at * epochs))
    gamma = [] if scale.step_gamma is None else [f"lr_policy.gamma={scale.step_gamma}"]
    policy_args = {
        "step": ["lr_policy=step", f"lr_policy.drop_epoch={drop}", *gamma],
        "autolr": ["lr_policy=autolr", f"autolr.drop_epoch={drop}"],
    }
    if scale.stem_diagnostic:
        # AutoLR with the stem free to move (50x unit 1's LR, not 0.5x)
        policy_args["autolr_stem"] = [*policy_args["autolr"], "autolr.stem_factor=50"]
    runs = premise.run_plan(units, seeds)  # constant and the freeze runs
    for seed in range(seeds):
        for policy, args in policy_args.items():
            runs[f"{policy}_seed{seed}"] = [*args, f"seed={seed}"]
    return runs


def r1_curve(result: dict) -> list[float]:
    """R@1 in points after each epoch."""
    return [100 * row["R@1"] for row in result["history"]]


def summarise(results: dict[str, dict], seeds: int, alpha: float = 2.0, beta: float = 0.4) -> dict:
    """The twin's metrics from the runs' results; the premise's through dml.studies.premise."""
    curves = {name: r1_curve(r) for name, r in results.items()}

    def runs(prefix: str) -> list[list[float]]:
        return [curves[f"{prefix}_seed{s}"] for s in range(seeds)]

    def finals(prefix: str) -> list[float]:
        return [c[-1] for c in runs(prefix)]

    def summary(values: list[float]) -> dict:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return {"mean": statistics.fmean(values), "std": std, "runs": values}

    pooled = 100 * results["constant_seed0"]["metrics"]["initial"]["R@1"]
    v0 = [results[f"autolr_seed{s}"]["autolr"]["trials"][0]["variation"] for s in range(seeds)]
    kinds = ("constant", *premise.FROZEN)
    m = premise.premise_metrics({k: finals(k) for k in kinds}, pooled, v0, alpha, beta)
    final = {p: summary(finals(p)) for p in POLICIES}
    out = {
        "pooled_R@1": pooled,
        "transfer_ratio": m["transfer_ratio"],
        **{f"{k}_cost": m[f"{k}_cost"] for k in premise.FROZEN},
        "v0_score": statistics.fmean(sorting_score(v) for v in v0),
        "v0_mean": m["v0"],
        "v0_spread": m["v0_spread"],
        "first_update": m["first_update"],
        "seed_std": {p: row["std"] for p, row in final.items()},
        "last_epoch_gain": {p: statistics.fmean(c[-1] - c[-2] for c in runs(p)) for p in POLICIES},
        "final_R@1": final,
        "autolr_final_lrs": [
            results[f"autolr_seed{s}"]["autolr"]["epochs"][-1]["lr"] for s in range(seeds)
        ],
        "curves_R@1": curves,
        "premise": m,
    }
    if f"autolr_stem_seed{seeds - 1}" in results:
        out["autolr_stem_R@1"] = summary(finals("autolr_stem"))
    return out


def verdicts(metrics: dict, scale: Scale = SCALES["cpu"]) -> dict[str, bool]:
    """Which targets hold; per-policy metrics must hold for every policy."""
    out = {}
    for key, (op, bound) in scale.targets.items():
        value = metrics[key]
        values = value.values() if isinstance(value, dict) else [value]
        out[key] = all(premise.meets(v, op, bound) for v in values)
    if not scale.premise_only:
        out["freeze_lower_below_upper"] = (
            metrics["freeze_lower_cost"] < metrics["freeze_upper_cost"]
        )
    return out


def probe_runs(results: dict[str, dict], out: Path, names: list[str]) -> dict:
    """Linear-probe accuracy of each target factor at each unit: pretrained, then after runs.

    Probes are fit on the training classes' images and scored on the test classes' images
    (same factor values, other combinations), so they measure what transfers.
    """
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from torch.utils.data import DataLoader

    from dml.data import ImageListDataset, load_retrieval_data
    from dml.data.synthetic import METADATA_FILE
    from dml.data.transforms import eval_transform
    from dml.run import model_for
    from dml.training.checkpoint import load_checkpoint

    cfg = OmegaConf.create(results[names[0]]["config"])
    data = load_retrieval_data(cfg.dataset)
    meta = json.loads((Path(cfg.dataset.root) / METADATA_FILE).read_text())
    attrs = {c["class_id"]: c for c in meta["classes"]}
    sets = []
    for split in (data.train, data.test):
        images = ImageListDataset(split, eval_transform(cfg.dataset))
        factors = {f: np.array([str(attrs[y][f]) for y in split.labels]) for f in FACTORS}
        sets.append((DataLoader(images, batch_size=128), factors))
    with torch.random.fork_rng():
        model = model_for(cfg)  # the pretrained backbone (the head is not probed)
    device = torch.device("cpu")
    probes = {"pretrained": _probe(model, sets, device)}
    for name in names:
        model.load_state_dict(load_checkpoint(out / name / "checkpoints" / "last.pt")["model"])
        probes[name] = _probe(model, sets, device)
    return probes


def _probe(model, sets, device) -> dict[str, list[float]]:
    from dml.evaluation.probe import factor_probes, unit_features

    (fit_loader, fit_factors), (eval_loader, eval_factors) = sets
    fit = unit_features(model, fit_loader, device)
    return factor_probes(fit, fit_factors, unit_features(model, eval_loader, device), eval_factors)


def main(argv: list[str] | None = None) -> int:
    """Run what is missing, summarise, write the JSON, print the verdicts."""
    args = parse_args(argv)
    scale = SCALES[args.scale]
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    out = (args.out or ROOT / "outputs" / "check_synthetic" / stamp).resolve()
    out.mkdir(parents=True, exist_ok=True)
    args.json = args.json.resolve()
    os.chdir(ROOT)  # the runs' configs hold data paths relative to the project root
    # every training class trains (no val hold-out): the metrics read the final epoch
    overrides = ["eval.selection=test", *scale.overrides, *args.overrides]
    start = time.time()
    try:
        units, epochs = twin_shape(overrides)
        cfg = compose_train(overrides)
        runs = plan_runs(args.seeds, units, epochs, scale)
        if any(results_status(out / name / "results.json") != "completed" for name in runs):
            prepare(
                compose_train(overrides)
            )  # the data and the source model, once, before the runs
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"error: bad override: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except DmlError as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    prepared = time.time() - start
    results = run_many(runs, out, overrides, args.parallel, tag="check")
    metrics = summarise(results, args.seeds, cfg.autolr.alpha, cfg.autolr.beta)
    if args.probe:
        print("[check] per-unit factor probes", flush=True)
        metrics["unit_probe"] = probe_runs(results, out, ["constant_seed0", "autolr_seed0"])
    passed = verdicts(metrics, scale)
    judged = premise.verdict(metrics["premise"], units)
    report = {
        "scale": args.scale,
        "seeds": args.seeds,
        "units": units,
        "epochs": epochs,
        "overrides": args.overrides,
        "runs_dir": str(out),
        **metrics,
        "targets": {k: f"{op} {b}" for k, (op, b) in scale.targets.items()},
        "passed": passed,
        "all_passed": all(passed.values()),
        "premise_verdict": judged["line"],
        "prepare_s": round(prepared, 1),
        "wall_time_s": round(time.time() - start, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, report)
    plot_report(report, out / "check_synthetic.png")
    print_report(report)
    print(f"plot: {out / 'check_synthetic.png'}")
    return 0 if report["all_passed"] else 1


def plot_report(report: dict, path: Path) -> None:
    """R@1 per epoch of each kind of run (mean over seeds), and the per-unit probes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    probes = report.get("unit_probe", {})
    fig, axes = plt.subplots(1, 1 + len(probes), figsize=(5 + 4 * len(probes), 4), squeeze=False)
    ax = axes[0][0]
    kinds = sorted({name.rsplit("_seed", 1)[0] for name in report["curves_R@1"]})
    for kind in kinds:
        curves = np.array(
            [c for n, c in report["curves_R@1"].items() if n.startswith(kind + "_seed")]
        )
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        epochs = np.arange(len(mean))
        ax.plot(epochs, mean, label=f"{kind} ({mean[-1]:.1f})")
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
    ax.axhline(report["pooled_R@1"], color="grey", linestyle=":", label="pretrained pooled")
    ax.set(xlabel="epoch", ylabel="test R@1 (%)", title=f"{report['seeds']} seeds, mean ± std")
    ax.legend(fontsize=7)
    for ax, (name, accs) in zip(axes[0][1:], probes.items()):
        for factor, values in accs.items():
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", label=factor)
        ax.set(xlabel="unit", ylabel="probe accuracy (test classes)", title=name, ylim=(0, 1))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_report(report: dict) -> None:
    """The metrics, a line each, then the targets missed and the premise's verdict."""
    print(f"pooled R@1 {report['pooled_R@1']:.2f}  transfer_ratio {report['transfer_ratio']:.3f}")
    print(
        f"freeze_lower_cost {report['freeze_lower_cost']:.2f}  "
        f"freeze_upper_cost {report['freeze_upper_cost']:.2f}  "
        f"freeze_stem_lower_cost {report['freeze_stem_lower_cost']:.2f}  "
        f"v0_score {report['v0_score']:.3f}  v0_spread {report['v0_spread'] or 0:.1f}x"
    )
    for policy, row in report["final_R@1"].items():
        gain = report["last_epoch_gain"][policy]
        print(
            f"{policy:9s} final R@1 {row['mean']:.2f} ± {row['std']:.2f}  "
            f"last_epoch_gain {gain:+.2f}  runs {[round(v, 2) for v in row['runs']]}"
        )
    if "autolr_stem_R@1" in report:
        stem = report["autolr_stem_R@1"]
        print(f"autolr, stem at 50x unit 1: final R@1 {stem['mean']:.2f} ± {stem['std']:.2f}")
    failed = [k for k, ok in report["passed"].items() if not ok]
    print("all targets met" if not failed else f"targets missed: {', '.join(failed)}")
    print(report["premise_verdict"])
