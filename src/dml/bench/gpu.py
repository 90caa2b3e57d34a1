"""The GPU check (scripts/gpu_check.py and .sh): how fast dml trains and evaluates on a GPU.

Each section runs in a process of its own, so that how long each process takes to exit after
its last line is measured too:

* ``step`` (bf16 and fp32): the paper recipe's training step (ResNet-50 at 224 px, pruning
  15,16, last stride 1, paper head, softmax, SGD Nesterov, batch 40) over a CUB-sized synthetic
  set cached on the device. Images/s of the model alone (a batch already on the GPU: forward,
  loss, backward, optimizer step) and of the Trainer as train.py drives it (loader, device
  augmentation, policy hooks), their ratio, and peak memory.
* ``compile``: the same model-only bf16 step under torch.compile (compile time, images/s).
* ``search``: Recall@K and MAP@R of an SOP-sized set (60,000 x 512-d) searched on the GPU,
  and its agreement with faiss on a 5,000-item part.
* ``decode``: JPEG decoding for data too large to cache: PIL in loader processes against
  nvjpeg (torchvision.io.decode_jpeg on the GPU), both resizing to 224 px.
* ``e2e``: `train.py experiment=cub200_autolr` on the CUB-sized synthetic set (random init,
  3 epochs): seconds per training pass, per evaluation and per epoch, AutoLR passes per
  epoch, and from them the projected wall time of one CUB run, of Table 4 (37 runs x 50
  epochs) and of Figure 1's sweep.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from dml.cli import compose_train
from dml.files import write_json
from dml.launch import ROOT, run_timed

SECTIONS = ("step_bf16", "step_fp32", "search", "decode", "e2e", "compile")
RESULT = "gpu_check_result: "
# CUB-200-2011's size: 100 train classes of 59 images (5,900) and 100 test classes (5,900)
CUB_SIZED = ["dataset.num_classes=200", "dataset.images_per_class=59"]
# a set small enough for the CPU, for tests of the check itself
TINY = [
    "dataset.num_classes=8",
    "dataset.images_per_class=6",
    "dataset.generated_size=32",
    "dataset.image_size=32",
    "dataset.resize_size=32",
    "trainer.batch_size=6",
]
# experiment=cub200_autolr's model, loss, optimizer and transforms on the synthetic set
RECIPE = [
    "experiment=cub200_autolr",
    "dataset=synthetic",
    "dataset.generated_size=256",
    "dataset.image_size=224",
    "dataset.resize_size=256",
    "dataset.cache=ram",
    "model.pretrained=none",  # random weights: speed does not depend on them
    "logger.tensorboard=false",
    "logger.progress=false",
]
# Table 4: 36 single-LR cells and AutoLR, 50 epochs each; Figure 1: 4 x 4 (alpha, beta) on
# CUB-200 and on Cars-196 (8,054 / 8,131 images against CUB's 5,864 / 5,924), 40 epochs
TABLE4 = {"single_lr_runs": 36, "autolr_runs": 1, "epochs": 50}
FIGURE1 = {"cub_runs": 16, "cars_runs": 16, "epochs": 40}
CARS_SCALE = {"train": 8054 / 5864, "test": 8131 / 5924}


def recipe(args: argparse.Namespace, precision: str) -> list[str]:
    """The recipe's overrides on this device, data dir and precision."""
    size = TINY if args.tiny else CUB_SIZED
    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    return [
        *RECIPE,
        *size,
        f"data_dir={args.data_dir}",
        f"trainer.device={args.device}",
        f"trainer.precision={precision}",
        f"trainer.channels_last={cuda}",
    ]


# -- sections, each run in its own process ---------------------------------------------------
def step_section(args: argparse.Namespace, precision: str) -> dict:
    """Model-only and Trainer images/s of one precision, and the peak memory of each."""
    from dml.run import bare_trainer

    cfg = compose_train([*recipe(args, precision), "lr_policy=constant", *args.overrides])
    with tempfile.TemporaryDirectory() as tmp, bare_trainer(cfg, Path(tmp)) as trainer:
        device = trainer.p.device
        batch = cfg.trainer.batch_size
        run_steps(trainer, args.warmup)
        _reset_peak(device)
        trainer_s = run_steps(trainer, args.steps)
        trainer_peak = _peak_mib(device)
        step, _ = model_only_step(trainer)
        _reset_peak(device)
        model_s = time_steps(step, args.warmup, args.steps, device)
        model_peak = _peak_mib(device)
        on_device = trainer.p.loader.__class__.__name__ == "DeviceBatches"
    trainer_ips = args.steps * batch / trainer_s
    model_ips = args.steps * batch / model_s
    return {
        "precision": precision,
        "device": _device_name(device),
        "batch_size": batch,
        "steps": args.steps,
        "augment_on_device": on_device,
        "model_only_images_per_s": round(model_ips, 1),
        "trainer_images_per_s": round(trainer_ips, 1),
        "trainer_over_model_only": round(trainer_ips / model_ips, 3),
        "peak_memory_mib": {"trainer": trainer_peak, "model_only": model_peak},
    }


def compile_section(args: argparse.Namespace) -> dict:
    """The model-only bf16 step with the model under torch.compile: compile time, images/s."""
    from dml.run import bare_trainer

    cfg = compose_train([*recipe(args, "bf16"), "lr_policy=constant", *args.overrides])
    with tempfile.TemporaryDirectory() as tmp, bare_trainer(cfg, Path(tmp)) as trainer:
        device = trainer.p.device
        plain, _ = model_only_step(trainer)
        plain_s = time_steps(plain, args.warmup, args.steps, device)
        compiled, _ = model_only_step(trainer, torch.compile(trainer.p.model))
        start = time.perf_counter()
        compiled()
        _sync(device)
        compile_s = time.perf_counter() - start
        compiled_s = time_steps(compiled, args.warmup, args.steps, device)
    batch = cfg.trainer.batch_size
    return {
        "compile_s": round(compile_s, 1),
        "model_only_images_per_s": round(args.steps * batch / plain_s, 1),
        "compiled_images_per_s": round(args.steps * batch / compiled_s, 1),
        "speedup": round(plain_s / compiled_s, 3),
    }


def search_section(args: argparse.Namespace) -> dict:
    """Seconds of Recall@K (SOP's ks) and MAP@R over an SOP-sized set searched on the device."""
    from dml.evaluation.recall import retrieval_metrics

    n, dim, classes = (2000, 64, 380) if args.tiny else (60000, 512, 11318)
    ks = [1, 10, 100, 1000] if not args.tiny else [1, 10, 100]
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(classes, dim, generator=gen)
    labels = torch.arange(n) % classes  # SOP: 5 or 6 images per class
    emb = (centres[labels] + 1.5 * torch.randn(n, dim, generator=gen)).to(device)
    search = "auto" if device.type == "cuda" else "torch"
    times = []
    for _ in range(4):  # the first warms up (kernels, allocator) and is not counted
        _sync(device)
        start = time.perf_counter()
        got = retrieval_metrics(emb, labels.to(device), ks, True, search=search)
        _sync(device)
        times.append(time.perf_counter() - start)
    part = torch.nonzero(labels < classes // 12).flatten().to(device)  # ~5,000, whole classes
    sub, sub_labels = emb[part], labels[part.cpu()]
    on_gpu = retrieval_metrics(sub, sub_labels, ks[:2], True, search=search)
    on_faiss = retrieval_metrics(sub.cpu(), sub_labels, ks[:2], True, search="faiss")
    return {
        "n": n,
        "dim": dim,
        "ks": ks,
        "seconds": round(statistics.median(times[1:]), 3),
        "metrics": {k: round(v, 4) for k, v in got.items()},
        "agrees_with_faiss_on_5000": all(abs(on_gpu[k] - on_faiss[k]) < 1e-9 for k in on_faiss),
    }


def decode_section(args: argparse.Namespace) -> dict:
    """Images/s of decoding and resizing CUB-like JPEGs: PIL in loader processes, nvjpeg."""
    from dml.bench.jpeg import decode_gpu, decode_loader, write_jpegs

    count = 64 if args.tiny else 2000
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_jpegs(Path(tmp), count, (500, 375) if not args.tiny else (50, 37))
        out: dict[str, Any] = {"images": count, "size": "500x375" if not args.tiny else "50x37"}
        for workers in args.decode_workers:
            out[f"pil_{workers}_workers_images_per_s"] = round(decode_loader(paths, workers), 1)
        if torch.device(args.device).type == "cuda":
            out["nvjpeg_images_per_s"] = round(decode_gpu(paths, torch.device(args.device)), 1)
    return out


def e2e_section(args: argparse.Namespace, out: Path) -> dict:
    """train.py on the recipe (3 epochs, bf16 on a GPU): its timings and the projections."""
    run_dir = out / "e2e_run"
    precision = "bf16" if args.device.startswith("cuda") else "fp32"
    cmd = [sys.executable, str(ROOT / "train.py"), *recipe(args, precision)]
    cmd += [f"trainer.epochs={args.e2e_epochs}", f"hydra.run.dir={run_dir}", *args.overrides]
    timed = run_timed(cmd, log=out / "e2e.log", timeout=args.timeout, echo=False)
    results = json.loads((run_dir / "results.json").read_text())
    if results["status"] != "completed":
        raise RuntimeError(f"e2e run ended {results['status']}: {results.get('error')}")
    return {
        **run_timings(results, timed.seconds),
        "precision": precision,
        "exit_after_last_line_s": round(timed.exit_after_last_line_s, 2),
    }


def run_timings(results: dict, process_s: float) -> dict:
    """Seconds per pass, evaluation and epoch, passes per epoch, and the projections."""
    timing = results["timing"]
    epochs = [e["passes"] for e in results.get("autolr", {}).get("epochs", [])]
    passes = epochs or [row["trials"] for row in results["history"]]
    train_s = sum(t["train_s"] for t in timing)
    eval_s = statistics.mean(t["eval_s"] for t in timing)
    pass_s = train_s / sum(passes)
    per_epoch = statistics.mean(t["train_s"] + t["eval_s"] for t in timing)
    ppe = sum(passes) / len(passes)
    # what a run costs besides its epochs: imports, data, caching, model, initial evaluation
    fixed = process_s - sum(t["train_s"] + t["eval_s"] for t in timing)
    return {
        "epochs": len(timing),
        "pass_s": round(pass_s, 2),
        "eval_s": round(eval_s, 2),
        "epoch_s": round(per_epoch, 2),
        "autolr_passes_per_epoch": round(ppe, 2),
        "fixed_s": round(fixed, 1),
        "process_s": round(process_s, 1),
        "projected_s": projections(pass_s, eval_s, ppe, fixed),
    }


def projections(pass_s: float, eval_s: float, ppe: float, fixed: float) -> dict:
    """Projected wall seconds on one GPU of one CUB run (40 epochs of AutoLR), of Table 4 and
    of Figure 1's sweep, at the measured pass, evaluation and fixed costs."""

    def run(epochs: int, passes: float, train: float = 1.0, test: float = 1.0) -> float:
        return fixed + epochs * (passes * pass_s * train + eval_s * test)

    t4 = TABLE4["single_lr_runs"] * run(TABLE4["epochs"], 1.0)
    t4 += TABLE4["autolr_runs"] * run(TABLE4["epochs"], ppe)
    e = FIGURE1["epochs"]
    fig1 = FIGURE1["cub_runs"] * run(e, ppe)
    fig1 += FIGURE1["cars_runs"] * run(e, ppe, CARS_SCALE["train"], CARS_SCALE["test"])
    return {"cub_run": round(run(40, ppe)), "table4": round(t4), "figure1": round(fig1)}


# -- the steps timed ---------------------------------------------------------------------
def run_steps(trainer, steps: int) -> float:
    """Seconds for `steps` Trainer steps over as many epochs as they take, with the device's
    queue drained at both ends."""
    device = trainer.p.device
    per_epoch = len(trainer.p.sampler)
    _sync(device)
    start = time.perf_counter()
    epoch = 0
    while steps > 0:
        trainer.steps = min(steps, per_epoch)
        trainer.train_epoch(epoch, 0)
        steps -= trainer.steps
        epoch += 1
    _sync(device)
    return time.perf_counter() - start


def model_only_step(trainer, model: torch.nn.Module | None = None):
    """A function running one step of the Trainer's model, loss and optimizer on one batch
    already on the device (no loader, no policy), under the Trainer's precision; and the batch."""
    p = trainer.p
    model = p.model if model is None else model
    images, labels = next(iter(p.loader))
    images, labels = images.to(p.device), labels.to(p.device)
    if trainer.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        p.optimizer.zero_grad(set_to_none=True)
        with trainer._autocast():
            loss = p.loss(model(images), labels)
        loss.backward()
        p.optimizer.step()

    return step, (images, labels)


def time_steps(step, warmup: int, steps: int, device: torch.device) -> float:
    """Seconds for `steps` calls of step after `warmup` uncounted ones."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


# -- the check: sections as child processes ----------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=20, help="steps run before timing")
    parser.add_argument("--e2e-epochs", type=int, default=3, help="epochs of the e2e run")
    parser.add_argument("--decode-workers", type=int, nargs="+", default=[8, 15])
    parser.add_argument("--device", default="cuda", help="cuda, or cpu to test the check")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (tests on the CPU)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data", help="synthetic cache")
    parser.add_argument("--out", type=Path, default=None, help="logs and the e2e run folder")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per section")
    parser.add_argument("--child", choices=SECTIONS, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="more train.py overrides")
    return parser.parse_args(argv)


def child(args: argparse.Namespace) -> dict:
    """One section, in this process."""
    name = args.child
    if name.startswith("step_"):
        return step_section(args, name.removeprefix("step_"))
    return {"compile": compile_section, "search": search_section, "decode": decode_section}[name](
        args
    )


def run_section(name: str, args: argparse.Namespace, out: Path) -> dict:
    """One section in a child process; its result and how long it took to exit."""
    if name == "e2e":
        return e2e_section(args, out)
    cmd = [sys.executable, "-m", "dml.bench.gpu", "--child", name, *_forwarded(args)]
    timed = run_timed(cmd, log=out / f"{name}.log", timeout=args.timeout, echo=False)
    found = [ln for ln in timed.lines if ln.startswith(RESULT)]
    if timed.returncode != 0 or not found:
        tail = " | ".join(timed.lines[-3:])
        return {"error": f"exit {timed.returncode}: {tail}"}
    return {
        **json.loads(found[-1].removeprefix(RESULT)),
        "exit_after_last_line_s": round(timed.exit_after_last_line_s, 2),
    }


def _forwarded(args: argparse.Namespace) -> list[str]:
    out = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device]
    out += ["--data-dir", str(args.data_dir), "--decode-workers", *map(str, args.decode_workers)]
    return [*out, *(["--tiny"] if args.tiny else []), *args.overrides]


def verdicts(report: dict) -> dict:
    """The issue's targets, where their sections ran (None: not measured)."""
    out: dict[str, bool | None] = {}
    bf16, fp32 = report.get("step_bf16", {}), report.get("step_fp32", {})
    if "trainer_over_model_only" in bf16:
        out["trainer_at_least_0.9_model_only"] = all(
            s.get("trainer_over_model_only", 0) >= 0.9 for s in (bf16, fp32) if s
        )
    if "trainer_images_per_s" in bf16 and "trainer_images_per_s" in fp32:
        out["bf16_trainer_at_least_1.5_fp32"] = (
            bf16["trainer_images_per_s"] >= 1.5 * fp32["trainer_images_per_s"]
        )
    if "seconds" in report.get("search", {}):
        out["search_60000_at_most_1_s"] = report["search"]["seconds"] <= 1.0
    exits = [s["exit_after_last_line_s"] for s in report.values() if "exit_after_last_line_s" in s]
    if exits:
        out["every_exit_at_most_5_s"] = max(exits) <= 5.0
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the sections, print one line each and write the JSON."""
    args = parse_args(argv)
    if args.child:
        print(RESULT + json.dumps(child(args)), flush=True)
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False); nothing checked")
        return 0
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    out.mkdir(parents=True, exist_ok=True)
    _prepare_data(args)
    report: dict[str, Any] = {}
    started = time.perf_counter()
    for name in args.sections:
        began = time.perf_counter()
        try:
            report[name] = run_section(name, args, out)
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
        report[name]["section_s"] = round(time.perf_counter() - began, 1)
        print(f"gpu_check {name}: {json.dumps(report[name])}", flush=True)
        if args.json:  # after every section, so a check stopped midway keeps what it measured
            _write(args.json, report, started)
    report["targets"] = verdicts(report)
    print(f"gpu_check targets: {json.dumps(report['targets'])}", flush=True)
    if args.json:
        _write(args.json, report, started)
    return 0


def _prepare_data(args: argparse.Namespace) -> None:
    """Generate the CUB-sized synthetic set once, before the sections share it."""
    from dml.run import split_data

    start = time.perf_counter()
    split_data(compose_train(recipe(args, "fp32")))
    print(f"gpu_check data: synthetic set ready in {time.perf_counter() - start:.1f} s")


def _write(path: Path, report: dict, started: float) -> None:
    total = {"total_s": round(time.perf_counter() - started, 1)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {**report, **total})


if __name__ == "__main__":
    raise SystemExit(main())
