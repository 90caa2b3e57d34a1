"""train.py as subprocesses, for scripts that compare many runs (check_synthetic, bench).

Each run gets its own folder under `out`; a run whose results.json says completed is reused,
a stopped one with a checkpoint is resumed, and one stopped before its first checkpoint is
started again. The runner never imports the trainer, so runs do not share a process's state.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
        with (out / f"{name}.log").open("a") as log:
            subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
    if not results.is_file():
        raise SystemExit(f"error: run {name} wrote no results.json; see {out / name}.log")
    data = json.loads(results.read_text())
    if data["status"] != "completed":
        raise SystemExit(f"error: run {name} ended {data['status']}: {data.get('error')}")
    return data
