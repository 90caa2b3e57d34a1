"""train.py as subprocesses, for scripts that compare many runs (check_synthetic, bench,
compare_layerwise), and the summary of one run they report.

Each run gets its own folder under `out`; a run whose results.json says completed is reused,
a stopped one with a checkpoint is resumed, and one stopped before its first checkpoint is
started again. run_train never imports the trainer, so runs do not share a process's state;
dml.run.prepare does (once, before the runs), to make the data and source model they share.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dml.logging.runs import mean_std

ROOT = Path(__file__).resolve().parents[2]
# the quick twin: the default recipe on 32 px images, 20 per class (not 30), over a source
# pre-trained 4 epochs (not 15), so a clean clone, pre-training included, fits in 10 minutes
QUICK_TWIN = [
    "dataset.image_size=32",
    "dataset.generated_size=32",
    "dataset.images_per_class=20",
    "pretrain.epochs=4",
]


def results_status(results: Path) -> str | None:
    """The status in a results.json, None when absent or unreadable."""
    try:
        return json.loads(results.read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def run_train(name: str, args: list[str], out: Path, tag: str = "run") -> dict:
    """One train.py subprocess in out/name; returns its results.json (reused if complete)."""
    run_dir = out / name
    results = run_dir / "results.json"
    if results_status(results) != "completed":
        cmd = [sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"]
        if (run_dir / "checkpoints" / "last.pt").is_file():  # a stopped run: continue it
            cmd = [sys.executable, str(ROOT / "train.py"), f"resume={run_dir}"]
        elif run_dir.exists():  # stopped before its first epoch: start it again
            shutil.rmtree(run_dir)
        cmd.append("logger.progress=false")
        print(f"[{tag}] {name}: {' '.join(args)}", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the log shows where a run is now
        with (out / f"{name}.log").open("a") as log:
            subprocess.run(
                cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False, env=env
            )
    if not results.is_file():
        raise SystemExit(f"error: run {name} wrote no results.json; see {out / name}.log")
    data = json.loads(results.read_text())
    if data["status"] != "completed":
        raise SystemExit(f"error: run {name} ended {data['status']}: {data.get('error')}")
    return data


def run_many(
    runs: dict[str, list[str]], out: Path, extra: list[str], parallel: int = 1, tag: str = "run"
) -> dict[str, dict]:
    """run_train for each (name, overrides) plus the shared `extra` overrides, `parallel` at
    a time (a GPU can train several small runs at once); results.json of each, by name."""

    def one(item: tuple[str, list[str]]) -> tuple[str, dict]:
        name, args = item
        return name, run_train(name, [*args, *extra], out, tag=tag)

    if parallel <= 1:
        return dict(map(one, runs.items()))
    with ThreadPoolExecutor(parallel) as pool:
        return dict(pool.map(one, runs.items()))


@dataclass
class Timed:
    """What run_timed saw of one command."""

    returncode: int
    lines: list[str]
    seconds: float  # from start to exit
    exit_after_last_line_s: float  # from its last line of output to its exit


def run_timed(
    cmd: list[str],
    log: Path | None = None,
    timeout: float | None = None,
    echo: bool = True,
) -> Timed:
    """Run cmd (stdout and stderr merged, unbuffered), echo and log its lines as they come,
    and time how long it takes to exit after its last line. Past `timeout` seconds its whole
    process group is killed (returncode -9)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    lines: list[str] = []
    last = [start]
    sink = log.open("a") if log is not None else None

    def read() -> None:
        for line in proc.stdout:
            last[0] = time.monotonic()
            lines.append(line.rstrip("\n"))
            if echo:
                print(line, end="", flush=True)
            if sink is not None:
                sink.write(line)
                sink.flush()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
    ended = time.monotonic()
    reader.join(timeout=5)
    if sink is not None:
        sink.close()
    return Timed(code, lines, ended - start, ended - last[0])


def run_summary(results: dict) -> dict:
    """R@1 (points, selected epoch), wall time and AutoLR passes/agreement of one run."""
    epochs = results["autolr"]["epochs"] if "autolr" in results else []
    n_epochs = len(results["history"])
    passes = sum(e["passes"] for e in epochs) if epochs else float(n_epochs)
    agree = [e["full_score"] >= e["threshold"] for e in epochs]
    return {
        "R@1": 100 * results["selection"]["test"]["R@1"],
        "wall_s": results["wall_time_s"],
        "passes_per_epoch": passes / n_epochs,
        "agreement": sum(agree) / len(agree) if agree else None,
    }


def summarise_runs(runs: list[dict]) -> dict:
    """Mean ± sample std of R@1, mean wall time, passes and agreement over run_summary()s."""
    r1_mean, r1_std = mean_std([r["R@1"] for r in runs])
    agree = [r["agreement"] for r in runs if r["agreement"] is not None]
    return {
        "R@1_mean": r1_mean,
        "R@1_std": r1_std,
        "wall_s": statistics.mean(r["wall_s"] for r in runs),
        "passes_per_epoch": statistics.mean(r["passes_per_epoch"] for r in runs),
        "agreement": statistics.mean(agree) if agree else None,
        "runs": runs,
    }
