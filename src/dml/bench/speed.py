"""Side-by-side performance benchmark: evaluation, trainer overhead and the cost of AutoLR.

    python scripts/bench.py [--quick] [--json bench.json] [--sections eval train autolr]

* eval: Recall@1,2,4,8 + MAP@R over n random 512-d embeddings (100 classes): our
  retrieval_metrics against the naive reference (n x n similarity and a Python loop over
  queries, as the AutoLR reference code evaluates, each row fully sorted; run at
  n = 20,000 at most, its matrix is n^2 floats), pytorch-metric-learning's
  AccuracyCalculator with faiss (P@1 = R@1 and MAP@R, its closest built-in set) and the
  limit, a bare blocked float32 product X[block] @ X.T. Also ours in query/gallery mode
  (In-Shop's protocol): n queries searched against a gallery of n more items drawn
  independently (the row "ours_gallery", n shown as "n x n").
  Each is timed (best of --repeat) in its own subprocess, so its peak RSS is its own.
* train: images/s of the Trainer (progress bar, logging and policy included) against a
  minimal hand-written loop over the same model, loader, loss and optimizer, in alternating
  rounds (the best round of each counts, so a background blip hits neither); and on that
  trainer AutoLR's snapshot + weight-variation + restore cost as a share of a whole trial.
* autolr: train.py runs of lr_policy=constant, step (not in --quick), autolr (rerun)
  and autolr with the cheaper mode, over --seeds seeds: R@1 (test at the epoch chosen by
  eval.selection=val), wall time and epoch passes. The twin's images and source model are
  made first, so no run's wall time holds them.
  --quick runs them (and train) on the twin at 32 px, 20 images per class, with a 4-epoch
  source pre-training,
  full mode on the default twin.

Full mode evaluates at n = 60,000 (and 20,000 for the naive reference). Writes the JSON
(--json) and prints a Markdown table of every measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from dml.cli import compose_train
from dml.files import write_json
from dml.launch import (
    QUICK_TWIN,
    ROOT,
    run_summary,
    run_train,
    summarise_runs,
)
from dml.run import prepare

SECTIONS = ("eval", "train", "autolr")
EVAL_METHODS = ("ours", "ours_gallery", "gemm", "naive", "pml")
NAIVE_N = 20000
KS = (1, 2, 4, 8)
DIM, CLASSES = 512, 100


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 20,000 and the 32 px twin")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--seeds", type=int, default=1, help="seeds per policy (autolr)")
    parser.add_argument(
        "--repeat", type=int, default=None, help="timings per eval method (quick 1, full 2)"
    )
    parser.add_argument("--cheap-mode", default="probe", choices=("probe", "online"))
    parser.add_argument("--out", type=Path, default=None, help="run folders (autolr)")
    parser.add_argument("--eval-n", type=int, default=None, help="n instead of 20k / 60k")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="train.py overrides (train, autolr)")
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 2)
    if args.seeds < 1 or args.repeat < 1:
        parser.error(f"--seeds and --repeat must be at least 1, got {args.seeds}, {args.repeat}")
    return args


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # macOS: bytes


# -- eval ------------------------------------------------------------------------------
def random_embeddings(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random 512-d float32 embeddings with labels from 100 classes."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, DIM), dtype=np.float32), rng.integers(0, CLASSES, n)


def random_query_gallery(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n queries (those of random_embeddings) and a gallery of n more, drawn independently."""
    return *random_embeddings(n), *random_embeddings(n, seed=1)


def bare_product(emb: np.ndarray) -> dict:
    """The limit: every block of queries times every item, nothing else."""
    x = torch.from_numpy(emb)
    for start in range(0, len(x), 8192):
        x[start : start + 8192] @ x.T
    return {}


def naive_metrics(emb: np.ndarray, labels: np.ndarray) -> dict:
    """n x n cosine similarities, then a Python loop sorting each query's row.

    The AutoLR reference code evaluates with the whole matrix and a loop over queries; the
    per-row full argsort is that of the Recall_at_ks helper many DML codebases share.
    """
    x = torch.nn.functional.normalize(torch.from_numpy(emb), dim=1)
    sims = (x @ x.T).numpy()
    np.fill_diagonal(sims, -np.inf)
    counts = np.bincount(labels)
    hits_at = dict.fromkeys(KS, 0)
    aps = []
    for i in range(len(sims)):
        order = np.argsort(-sims[i])[:-1]  # the query itself (at -inf) sorts last
        rel = labels[order] == labels[i]
        for k in KS:
            hits_at[k] += bool(rel[:k].any())
        r = int(counts[labels[i]]) - 1
        if r > 0:
            prec = np.cumsum(rel[:r]) / np.arange(1, r + 1)
            aps.append(float((prec * rel[:r]).sum()) / r)
    return {**{f"R@{k}": hits_at[k] / len(sims) for k in KS}, "MAP@R": float(np.mean(aps))}


def pml_metrics(emb: np.ndarray, labels: np.ndarray) -> dict:
    """pytorch-metric-learning's AccuracyCalculator with an exact faiss inner-product index.

    PML leaves queries with no other member of their class out of P@1 (our R@1 counts them
    as misses); at the benchmark's sizes every class has dozens of members.
    """
    import faiss
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import FaissKNN

    x = torch.nn.functional.normalize(torch.from_numpy(emb), dim=1)
    calc = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
        knn_func=FaissKNN(reset_before=True, reset_after=True, index_init_fn=faiss.IndexFlatIP),
    )
    acc = calc.get_accuracy(x, torch.from_numpy(labels))
    return {"R@1": acc["precision_at_1"], "MAP@R": acc["mean_average_precision_at_r"]}


def eval_worker(method: str, n: int, repeat: int) -> dict:
    """Time one evaluation method at n (best of repeat); runs in its own process."""
    from dml.evaluation import retrieval_metrics

    if method == "ours_gallery":
        emb, labels, gallery, gallery_labels = random_query_gallery(n)
    else:
        (emb, labels), gallery, gallery_labels = random_embeddings(n), None, None
    run = {
        "ours": lambda: retrieval_metrics(emb, labels, KS),
        "ours_gallery": lambda: retrieval_metrics(emb, labels, KS, True, gallery, gallery_labels),
        "gemm": lambda: bare_product(emb),
        "naive": lambda: naive_metrics(emb, labels),
        "pml": lambda: pml_metrics(emb, labels),
    }[method]
    data_mib = peak_rss_mib()
    times, metrics = [], {}
    for _ in range(repeat):
        start = time.perf_counter()
        metrics = run()
        times.append(time.perf_counter() - start)
    return {
        "method": method,
        "n": n,
        **({"gallery_n": len(gallery)} if gallery is not None else {}),
        "seconds": min(times),
        "peak_mib": peak_rss_mib(),
        "data_mib": data_mib,
        "metrics": {k: round(float(v), 6) for k, v in metrics.items()},
    }


def run_worker(method: str, n: int, repeat: int) -> dict:
    """eval_worker in a fresh subprocess (so peak memory is that method's alone)."""
    worker = ["--worker", method, str(n), "--repeat", str(repeat)]
    cmd = [sys.executable, "-m", "dml.bench.speed", *worker]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"error: eval worker {method} n={n} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_eval(n: int, repeat: int, naive_n: int = NAIVE_N) -> dict:
    """Every eval method at n, and the naive reference (with ours) at naive_n."""
    plan = [(m, n) for m in ("ours", "ours_gallery", "gemm", "pml")]
    plan += [("naive", naive_n)] + ([("ours", naive_n)] if n != naive_n else [])
    rows = []
    for method, size in plan:
        print(f"[bench] eval {method} n={size}", flush=True)
        rows.append(run_worker(method, size, repeat))
    at = {(r["method"], r["n"]): r for r in rows}
    ours = at["ours", n]
    return {
        "n": n,
        "rows": rows,
        "seconds": ours["seconds"],
        "ratio_to_gemm": ours["seconds"] / at["gemm", n]["seconds"],
        "naive_n": naive_n,
        "speedup_vs_naive": at["naive", naive_n]["seconds"] / at["ours", naive_n]["seconds"],
        "speedup_vs_pml": at["pml", n]["seconds"] / ours["seconds"],
        "peak_mib": ours["peak_mib"],
        "gallery_seconds": at["ours_gallery", n]["seconds"],
        "gallery_peak_mib": at["ours_gallery", n]["peak_mib"],
    }


# -- train -----------------------------------------------------------------------------
def plain_loop(parts, steps: int) -> None:
    """The minimal loop: forward, loss, backward, step; nothing else."""
    parts.model.train()
    for images, labels in islice(iter(parts.loader), steps):
        loss = parts.loss(parts.model(images.to(parts.device)), labels.to(parts.device))
        parts.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parts.optimizer.step()


def bench_train(quick: bool, overrides: list[str], rounds: int | None = None) -> dict:
    """Images/s of the Trainer and of the plain loop on the twin, in alternating rounds."""
    steps = 10 if quick else 30
    rounds = rounds or (3 if quick else 4)
    cfg = compose_train(["lr_policy=constant", *overrides, f"trainer.max_steps_per_epoch={steps}"])
    with tempfile.TemporaryDirectory() as tmp:
        from dml.run import bare_trainer

        with bare_trainer(cfg, Path(tmp)) as trainer:
            return _time_trainer(trainer, cfg, steps, rounds)


def _time_trainer(trainer, cfg, steps: int, rounds: int) -> dict:
    """The train section's timings on a bare trainer, in alternating rounds."""
    batch = cfg.trainer.batch_size
    timed = {"trainer": [], "plain": []}
    runs = {
        "trainer": lambda: trainer.train_epoch(0, 0),
        "plain": lambda: plain_loop(trainer.p, steps),
    }
    for r in range(rounds + 1):  # round 0 warms both up and is not counted
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if r:
                timed[name].append(time.perf_counter() - start)
    best = {name: min(t) for name, t in timed.items()}
    # AutoLR's snapshot + variation on the same model, against a whole trial at this pace
    cost = snapshot_cost(trainer)
    cost["trial_s"] = best["trainer"] * len(trainer.p.sampler) / steps
    return {
        "steps": steps,
        "rounds": rounds,
        "batch_size": batch,
        "trainer_images_per_s": steps * batch / best["trainer"],
        "plain_images_per_s": steps * batch / best["plain"],
        "overhead_fraction": best["trainer"] / best["plain"] - 1,
        "snapshot_timing": cost,
    }


# -- autolr ----------------------------------------------------------------------------
def policy_runs(cheap_mode: str, epochs: int, step: bool = True) -> dict[str, list[str]]:
    """Policy name -> train.py overrides (step and AutoLR drop at 3/4 of the epochs);
    step=False leaves out the step schedule (--quick: the cost comparison needs none)."""
    drop = max(1, round(0.75 * epochs))
    autolr = ["lr_policy=autolr", f"autolr.drop_epoch={drop}"]
    runs = {"constant": ["lr_policy=constant"]}
    if step:
        runs["step"] = ["lr_policy=step", f"lr_policy.drop_epoch={drop}"]
    runs["autolr_rerun"] = [*autolr, "autolr.mode=rerun"]
    runs[f"autolr_{cheap_mode}"] = [*autolr, f"autolr.mode={cheap_mode}"]
    return runs


def snapshot_cost(trainer, repeat: int = 5) -> dict:
    """Seconds of one AutoLR snapshot (trial start) and of variation + restore (trial end),
    each the best of `repeat` (as the trial time it is set against is a best round)."""
    from dml.autolr.variation import snapshot_main_path, weight_variation

    backbone = trainer.p.model.backbone
    snaps, ends = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        token, main = trainer.snapshot(), snapshot_main_path(backbone)
        snaps.append(time.perf_counter() - start)
        start = time.perf_counter()
        weight_variation(backbone, main)
        trainer.restore(token)
        ends.append(time.perf_counter() - start)
    return {"snapshot_s": min(snaps), "variation_restore_s": min(ends)}


def snapshot_share(overrides: list[str]) -> dict:
    """snapshot_cost against the time of one whole trial, on this twin (without `train`)."""
    cfg = compose_train(["lr_policy=autolr", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        from dml.run import bare_trainer

        with bare_trainer(cfg, Path(tmp)) as trainer:
            trainer.p.policy.begin_epoch(0)
            start = time.perf_counter()
            trainer.train_epoch(0, 0)
            trial = time.perf_counter() - start
            cost = snapshot_cost(trainer)
    return {**cost, "trial_s": trial}


def bench_autolr(
    quick: bool,
    seeds: int,
    cheap_mode: str,
    out: Path,
    overrides: list[str],
    share: dict | None = None,
) -> dict:
    """Constant, step, AutoLR rerun and the cheaper mode over seeds; costs and R@1.

    `share`: the train section's snapshot timing (measured here when it did not run)."""

    twin = [*(QUICK_TWIN if quick else []), *overrides]
    epochs = compose_train(twin).trainer.epochs
    prepare(compose_train(twin))  # so no run's wall time holds the one-off source pre-training
    per_policy = {}
    for name, args in policy_runs(cheap_mode, epochs, step=not quick).items():
        runs = [
            run_summary(run_train(f"{name}_seed{s}", [*args, *twin, f"seed={s}"], out, "bench"))
            for s in range(seeds)
        ]
        per_policy[name] = summarise_runs(runs)
    share = share or snapshot_share(twin)
    rerun, cheap = per_policy["autolr_rerun"], per_policy[f"autolr_{cheap_mode}"]
    return {
        "epochs": epochs,
        "seeds": seeds,
        "twin": twin,
        "cheap_mode": cheap_mode,
        "policies": per_policy,
        "retry_passes_per_epoch": rerun["passes_per_epoch"],
        "cheap_passes_per_epoch": cheap["passes_per_epoch"],
        "retry_agreement": rerun["agreement"],
        "cheap_agreement": cheap["agreement"],
        "snapshot_share": (share["snapshot_s"] + share["variation_restore_s"]) / share["trial_s"],
        "snapshot_timing": share,
    }


def markdown(report: dict) -> str:
    """The measurements as Markdown tables."""
    lines = []
    if "eval" in report:
        e = report["eval"]
        lines += ["| eval | n | seconds | peak MiB | R@1 | MAP@R |", "|---|---|---|---|---|---|"]
        for r in e["rows"]:
            m = r["metrics"]
            r1 = f"{100 * m['R@1']:.2f}" if "R@1" in m else "-"
            mapr = f"{100 * m['MAP@R']:.2f}" if "MAP@R" in m else "-"
            size = f"{r['n']} x {r['gallery_n']}" if "gallery_n" in r else r["n"]
            lines.append(
                f"| {r['method']} | {size} | {r['seconds']:.2f} | {r['peak_mib']:.0f} "
                f"| {r1} | {mapr} |"
            )
        lines += [
            "",
            f"ours / bare product {e['ratio_to_gemm']:.2f}x at n={e['n']}; "
            f"{e['speedup_vs_naive']:.1f}x faster than naive at n={e['naive_n']}; "
            f"{e['speedup_vs_pml']:.1f}x faster than PML; peak {e['peak_mib']:.0f} MiB; "
            f"query/gallery {e['n']} x {e['n']}: {e['gallery_seconds']:.2f} s, "
            f"peak {e['gallery_peak_mib']:.0f} MiB",
            "",
        ]
    if "train" in report:
        t = report["train"]
        lines += [
            f"train: trainer {t['trainer_images_per_s']:.1f} images/s, plain loop "
            f"{t['plain_images_per_s']:.1f} images/s, overhead {100 * t['overhead_fraction']:.1f}%",
            "",
        ]
    if "autolr" in report:
        a = report["autolr"]
        lines += [
            f"autolr ({a['seeds']} seed(s), {a['epochs']} epochs, twin {a['twin'] or 'default'}):",
            "",
            "| policy | R@1 (val-selected) | wall s | passes/epoch | agreement |",
            "|---|---|---|---|---|",
        ]
        for name, p in a["policies"].items():
            agree = "-" if p["agreement"] is None else f"{p['agreement']:.2f}"
            lines.append(
                f"| {name} | {p['R@1_mean']:.2f} ± {p['R@1_std']:.2f} | {p['wall_s']:.0f} "
                f"| {p['passes_per_epoch']:.2f} | {agree} |"
            )
        lines += ["", f"snapshot + variation: {100 * a['snapshot_share']:.2f}% of a trial"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, write the JSON and print the tables."""
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(eval_worker(args.worker[0], int(args.worker[1]), args.repeat)))
        return 0
    os.chdir(ROOT)  # the runs' configs hold data paths relative to the project root
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    out = (args.out or ROOT / "outputs" / "bench" / stamp).resolve()
    start = time.time()
    report: dict = {"quick": args.quick, "machine": {"cores": _cores(), "torch": torch.__version__}}
    if "eval" in args.sections:
        n = args.eval_n or (NAIVE_N if args.quick else 60000)
        report["eval"] = bench_eval(n, args.repeat, min(n, NAIVE_N))
    if "train" in args.sections:
        print("[bench] train", flush=True)
        report["train"] = bench_train(
            args.quick, [*(QUICK_TWIN if args.quick else []), *args.overrides]
        )
    if "autolr" in args.sections:
        share = report["train"]["snapshot_timing"] if "train" in report else None
        report["autolr"] = bench_autolr(
            args.quick, args.seeds, args.cheap_mode, out, args.overrides, share
        )
    report["wall_time_s"] = round(time.time() - start, 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, report)
    print(markdown(report))
    print(f"total {report['wall_time_s']:.0f} s")
    return 0


def _cores() -> int:
    """Cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":  # run_worker's subprocesses
    sys.exit(main())
