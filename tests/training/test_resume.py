"""Resume: a run killed at any point and resumed ends as the uninterrupted run; bad resumes fail
in one line and change nothing."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dml.errors import DmlError
from dml.training.resume import RESUME_SAFE, resume_state
from tests.conftest import TINY_VAL_OVERRIDES, stop_when, unbuffered_env

ROOT = Path(__file__).resolve().parents[2]
# the tiny twin, 3 epochs of AutoLR with re-runs, without MAP@R (the slow metric)
TINY = [*TINY_VAL_OVERRIDES, "trainer.epochs=3", "autolr.max_trials=2", "eval.map_at_r=false"]
COMPARED = ("metrics", "history", "autolr", "selection")


def command(data: Path, *args: str) -> list[str]:
    return [sys.executable, "train.py", *TINY, f"data_dir={data}", *args]


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def resume(train_cli, run_dir: Path, *overrides: str):
    """`python train.py resume=<run_dir> ...` (in this process)."""
    return train_cli(f"resume={run_dir}", *overrides)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, Path]:
    """(data dir, run dir) of the whole 3-epoch AutoLR run, seed 0."""
    base = tmp_path_factory.mktemp("resume")
    data, run = base / "data", base / "whole"
    proc = subprocess.run(
        command(data, f"hydra.run.dir={run}"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=unbuffered_env(),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return data, run


def test_sigkill_during_epoch_2_then_resume_equals_the_uninterrupted_run(
    uninterrupted, tmp_path, train_cli
):
    """Catches any state a checkpoint misses (AutoLR LRs, threshold, logs, sampler, RNG,
    history, best): the resumed run's metrics, per-epoch history and AutoLR trials must be
    exactly those of the run that was never stopped."""
    data, whole = uninterrupted
    run = tmp_path / "killed"
    rc, out, _ = stop_when(
        command(data, f"hydra.run.dir={run}"), "[autolr] epoch 2 trial 0", signal.SIGKILL
    )
    assert rc == -signal.SIGKILL and "epoch 2:" not in out
    assert results(run)["status"] == "running"  # killed: nothing had the time to write more
    proc = resume(train_cli, run)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed after epoch 1 of 3" in proc.stdout
    got, want = results(run), results(whole)
    assert got["status"] == "completed"
    for key in COMPARED:
        assert got[key] == want[key], key
    assert [h["epoch"] for h in got["history"]] == [0, 1, 2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_cleanly_keeps_the_checkpoint_and_says_how_to_resume(
    uninterrupted, tmp_path, sig
):
    """Catches SIGTERM (a scheduler's stop) or SIGINT (Ctrl-C) killing the run without a
    results.json or losing the last complete checkpoint, and a hint that is not the resume
    command."""
    data, _ = uninterrupted
    run = tmp_path / "stopped"
    rc, _, err = stop_when(command(data, f"hydra.run.dir={run}"), "[autolr] epoch 1 trial 0", sig)
    assert rc == 130, err[-2000:]
    assert (
        err.strip().splitlines()[-1] == f"interrupted: continue with: python train.py resume={run}"
    )
    res = results(run)
    assert res["status"] == "interrupted" and [h["epoch"] for h in res["history"]] == [0]
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["epoch"] == 0
    # the hint's command is the one the SIGKILL test runs; it continues from epoch 1
    cfg, state = resume_state(run, [])
    assert state["epoch"] == 0 and cfg.trainer.epochs == 3


@pytest.fixture
def stopped_copy(uninterrupted, tmp_path) -> Path:
    """A copy of the whole run marked as interrupted: a folder resume accepts."""
    run = tmp_path / "copy"
    shutil.copytree(uninterrupted[1], run)
    res = results(run)
    res["status"] = "interrupted"
    (run / "results.json").write_text(json.dumps(res))
    return run


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_folder", "no such folder"),
        ("no_checkpoint", "no checkpoint (last.pt in checkpoints/)"),
        ("corrupted", "checkpoints/last.pt is unreadable"),
        ("foreign", "written by a different config than this run's results.json"),
        ("completed", "the run has completed"),
    ],
)
def test_bad_resume_folders_fail_in_one_line(stopped_copy, damage, message):
    """Catches a resume that crashes on, or silently accepts, a folder it cannot continue."""
    run = stopped_copy
    ckpt = run / "checkpoints" / "last.pt"
    if damage == "no_folder":
        run = run.parent / "nowhere"
    elif damage == "no_checkpoint":
        ckpt.unlink()
    elif damage == "corrupted":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])  # a copy cut short
    elif damage == "foreign":
        res = results(run)
        res["config"]["trainer"]["epochs"] = 9
        (run / "results.json").write_text(json.dumps(res))
    else:
        res = results(run)
        res["status"] = "completed"
        (run / "results.json").write_text(json.dumps(res))
    with pytest.raises(DmlError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        resume_state(run, [])
    assert "\n" not in str(err.value)
    if damage == "foreign":
        assert "trainer.epochs: 9 vs 3" in str(err.value)


def test_resume_refuses_an_override_that_changes_the_experiment(stopped_copy, train_cli):
    """Catches resume applying trainer.epochs=8 (a different experiment in the same folder),
    and a safe override not reaching the config."""
    before = (stopped_copy / "results.json").read_text()
    proc = resume(train_cli, stopped_copy, "trainer.epochs=8")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"error: resume={stopped_copy}: the override trainer.epochs=8 would change the "
        f"experiment; while resuming only {', '.join(RESUME_SAFE)} may be set"
    )
    assert (stopped_copy / "results.json").read_text() == before  # nothing touched
    cfg, state = resume_state(stopped_copy, ["dataset.num_workers=0", "eval.batch_size=5"])
    assert cfg.eval.batch_size == 5 and cfg.trainer.epochs == 3 and state["epoch"] == 2


def test_a_requeued_submitit_job_continues_from_its_checkpoint(
    uninterrupted, tmp_path, train_cli, monkeypatch
):
    """Bug: a Slurm job re-queued after pre-emption (submitit starts the same command again
    in the same folder) failing with "already holds a run", losing that sweep point; or
    starting over instead of continuing."""
    data, whole = uninterrupted
    run = tmp_path / "preempted"
    args = command(data, f"hydra.run.dir={run}", "seed=0")
    rc, _, _ = stop_when(args, "[autolr] epoch 2 trial 0", signal.SIGKILL)
    assert rc == -signal.SIGKILL and results(run)["status"] == "running"
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    again = train_cli(*args[2:])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed after epoch 1 of 3" in again.stdout
    got, want = results(run), results(whole)
    assert got["status"] == "completed" and got["history"] == want["history"]
    # outside submitit the same command still refuses to touch a folder that holds a run
    monkeypatch.delenv("SUBMITIT_EXECUTOR")
    plain = train_cli(*args[2:])
    assert plain.returncode == 1 and "already holds a run" in plain.stderr
