"""dml.run.run: every ending writes results.json with its status, in one line for the user."""

from __future__ import annotations

import json

import dml.run
from dml.run import run
from tests.conftest import TINY_OVERRIDES, compose_cfg


def test_unexpected_exception_writes_failed_results_and_the_traceback(
    tmp_path, monkeypatch, capsys
):
    """Catches a bug (not a DmlError) escaping as a traceback with no results.json: a sweep's
    aggregator would not see the job, and a multirun would stop at it."""

    def broken(cfg, run_dir, results, state=None):
        results["metrics"]["initial"] = {"R@1": 0.25}
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(dml.run, "train_run", broken)
    run_dir = tmp_path / "run"
    code = run(compose_cfg([*TINY_OVERRIDES, f"data_dir={tmp_path}"]), run_dir)
    assert code == 1
    saved = json.loads((run_dir / "results.json").read_text())
    trace = run_dir / "traceback.txt"
    assert saved["status"] == "failed" and saved["metrics"] == {"initial": {"R@1": 0.25}}
    assert saved["error"] == f"ZeroDivisionError: division by zero (unexpected; see {trace})"
    assert "raise ZeroDivisionError" in trace.read_text()
    err = capsys.readouterr().err.strip()
    assert err == f"error: {saved['error']}"


def test_results_json_is_written_when_the_run_starts(tmp_path, monkeypatch):
    """Catches a run that writes results.json only at its end: a killed run would leave no
    record of its config, and resume could not check the checkpoint against it."""
    seen = {}

    def look(cfg, run_dir, results, state=None):
        seen.update(json.loads((run_dir / "results.json").read_text()))
        results["metrics"] = {"initial": {"R@1": 0.5}, "final": {"R@1": 0.5}}

    monkeypatch.setattr(dml.run, "train_run", look)
    cfg = compose_cfg([*TINY_OVERRIDES, f"data_dir={tmp_path}"])
    assert run(cfg, tmp_path / "run") == 0
    assert seen["status"] == "running" and seen["config"]["trainer"]["batch_size"] == 12


def test_diverged_weights_are_a_one_line_error_not_a_bug(tmp_path, capsys):
    """Catches weights that blow up in an epoch's last steps (the loss still finite) reaching
    faiss as NaN embeddings: a ValueError reported as an unexpected bug with a traceback."""
    cfg = compose_cfg(
        [*TINY_OVERRIDES, f"data_dir={tmp_path}", "lr_policy=constant"]
        + ["optimizer.lr=1e6", "optimizer.head_lr=1e6", "trainer.epochs=2"]
    )
    assert run(cfg, tmp_path / "run") == 1
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["status"] == "failed" and "lower the learning rate" in saved["error"]
    assert not (tmp_path / "run" / "traceback.txt").exists()
    assert capsys.readouterr().err.strip() == f"error: {saved['error']}"


def test_cudnn_benchmark_follows_the_key_on_cuda_only(monkeypatch):
    """Bug: trainer.cudnn_benchmark ignored on CUDA, or set (a global flag) for CPU runs."""
    import torch

    from dml.run import set_cudnn_benchmark

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    set_cudnn_benchmark(torch.device("cuda"), False)
    assert torch.backends.cudnn.benchmark is False
    set_cudnn_benchmark(torch.device("cpu"), True)
    assert torch.backends.cudnn.benchmark is False
    set_cudnn_benchmark(torch.device("cuda"), True)
    assert torch.backends.cudnn.benchmark is True
