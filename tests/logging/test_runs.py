"""dml.logging.runs: reading finished runs back, with every expected value worked out by hand."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import dml.logging
from dml.errors import DmlError
from dml.logging import runs
from dml.logging.runs import (
    NotAnObjectError,
    Run,
    collect_runs,
    find_results,
    flatten,
    is_ignored,
    load_results,
    mean_std,
    natural_key,
    percent_cell,
    read_run,
    read_run_results,
    selected_metrics,
)


def write(folder: Path, results: Any) -> Path:
    """results.json in folder (created), JSON-encoded."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(json.dumps(results))
    return path


def done(r1: float, seed: int = 0) -> dict[str, Any]:
    """A completed run with only R@1 in its selection block."""
    return {
        "status": "completed",
        "config": {"seed": seed, "dataset": {"name": "synthetic", "root": f"data/s{seed}"}},
        "selection": {"protocol": "test", "epoch": 3, "test": {"R@1": r1}},
    }


# ------------------------------------------------------------------ selected_metrics


def test_selection_test_wins_over_best_and_final() -> None:
    """Bug: metrics.best (picked on test) or metrics.final reported although the run's own
    protocol (here val) picked another epoch, recorded in selection.test."""
    results = {
        "selection": {"protocol": "val", "epoch": 4, "test": {"R@1": 0.71, "R@2": 0.8}},
        "metrics": {"best": {"R@1": 0.9}, "final": {"R@1": 0.5}},
    }
    assert selected_metrics(results) == ({"R@1": 0.71, "R@2": 0.8}, "val")


def test_old_file_falls_back_to_best_then_final() -> None:
    """Bug: a results.json written before the selection block existed reporting final (or
    nothing) when it has metrics.best; or an empty best block hiding final."""
    old = {"metrics": {"best": {"R@1": 0.55}, "final": {"R@1": 0.10}}}
    assert selected_metrics(old) == ({"R@1": 0.55}, "test via metrics.best")
    no_best = {"metrics": {"best": {}, "final": {"R@1": 0.10}}}
    assert selected_metrics(no_best) == ({"R@1": 0.10}, "test via metrics.final")
    assert selected_metrics({"status": "failed"}) == ({}, "test via metrics.final")


def test_selection_without_protocol_and_non_metric_keys() -> None:
    """Bug: a selection block without a protocol crashing, or non-metric entries (epoch, a
    string) read as metrics."""
    results = {"selection": {"test": {"R@1": 1, "epoch": 7, "MAP@R": 0.25, "note": "x"}}}
    assert selected_metrics(results) == ({"R@1": 1.0, "MAP@R": 0.25}, "test")


# ------------------------------------------------------------------ finding and reading


def test_collect_runs_finds_nested_jobs_in_natural_order(tmp_path: Path) -> None:
    """Bug: only <sweep>/<n>/results.json read, or job 10 listed before job 2 (text order)."""
    for name in ["10", "2", "sub/inner/3", "1"]:
        write(tmp_path / name, done(0.5))
    names = [r.name for r in collect_runs([tmp_path])]
    assert names == ["1", "2", "10", "sub/inner/3"]
    assert [p.parent.name for p in find_results(tmp_path)] == ["1", "2", "10", "3"]


def test_natural_key_orders_digit_runs_as_numbers() -> None:
    """Bug: 'job10' sorted before 'job9', or 'a2/b10' before 'a2/b9'."""
    names = ["job10", "job9", "a2/b10", "a2/b9", "job1"]
    assert sorted(names, key=natural_key) == ["a2/b9", "a2/b10", "job1", "job9", "job10"]


def test_collect_runs_over_several_roots_names_and_deduplicates(tmp_path: Path) -> None:
    """Bug: two sweeps' job '0' taken for one run, or a folder given twice counted twice."""
    write(tmp_path / "a" / "0", done(0.60, seed=0))
    write(tmp_path / "b" / "0", done(0.62, seed=1))
    found = collect_runs([tmp_path / "a", tmp_path / "b", tmp_path / "a"])
    assert [r.name for r in found] == [str(tmp_path / "a" / "0"), str(tmp_path / "b" / "0")]
    assert [r.metrics["R@1"] for r in found] == [0.60, 0.62]


def test_read_run_flattens_config_and_keeps_status_and_error(tmp_path: Path) -> None:
    """Bug: the config kept nested (so 'dataset.name' lookups miss), or the failure reason
    and status of a failed run lost."""
    failed = {"status": "failed", "error": "CUDA out of memory", "config": {"a": {"b": [1, 2]}}}
    run = read_run(write(tmp_path / "7", failed), "7")
    assert run == Run(
        name="7",
        status="failed",
        config={"a.b": [1, 2]},
        metrics={},
        protocol="test via metrics.final",
        error="CUDA out of memory",
    )
    good = read_run(write(tmp_path / "8", done(0.6, seed=3)), "8")
    assert good.config == {"seed": 3, "dataset.name": "synthetic", "dataset.root": "data/s3"}
    assert (good.status, good.metrics, good.protocol) == ("completed", {"R@1": 0.6}, "test")


@pytest.mark.parametrize(
    ("content", "error"),
    [(b"{not json", "JSONDecodeError"), (b"\xff\xfe\x00", "UnicodeDecodeError"), (b"[1]", "list")],
)
def test_unreadable_file_becomes_an_unreadable_run(
    tmp_path: Path, content: bytes, error: str
) -> None:
    """Bug: one half-written, binary or non-object results.json crashing the whole summary
    instead of showing up as one 'unreadable' run."""
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "results.json").write_bytes(content)
    (run,) = collect_runs([tmp_path])
    assert (run.name, run.status, run.metrics, run.config) == ("0", "unreadable", {}, {})
    assert error in run.error
    with pytest.raises(ValueError):
        load_results(tmp_path / "0" / "results.json")


# ------------------------------------------------------------ one run's results.json


def test_read_run_results_returns_the_object(tmp_path: Path) -> None:
    """Bug: the one-run reader returning something other than the file's object (a Run, the
    config only, a copy with keys dropped)."""
    write(tmp_path, done(0.61))
    assert read_run_results(tmp_path) == done(0.61)


def _broken_run(tmp_path: Path, case: str) -> tuple[Path, str]:
    """A run folder broken as case says, and the one-line error expected for it."""
    run = tmp_path / "run"
    path = run / "results.json"
    if case == "missing":
        return run, f"run directory not found: {run}"
    if case == "dir_is_a_file":
        run.write_text("not a folder")
        return run, f"run directory not found: {run}"
    run.mkdir()
    if case == "no_results":
        return run, f"no results.json in run {run}"
    if case == "results_is_a_dir":
        path.mkdir()
        return run, f"no results.json in run {run}"
    content = {"half_written": b'{"status": "compl', "binary": b"\xff\xfe\x00", "list": b"[1]"}
    path.write_bytes(content[case])
    expected = {
        "half_written": f"cannot read {path}: not valid JSON: ",
        "binary": f"cannot read {path}: 'utf-8' codec can't decode",
        "list": f"{path} holds a JSON list, not an object",
    }
    return run, expected[case]


@pytest.mark.parametrize(
    "case",
    ["missing", "dir_is_a_file", "no_results", "results_is_a_dir", "half_written", "binary"],
)
def test_read_run_results_errors_are_one_line_dml_errors(tmp_path: Path, case: str) -> None:
    """Bug: a mistyped run dir, a file given as the run dir, a folder without results.json (or
    with a folder of that name), a half-written or binary file escaping as NotADirectoryError,
    IsADirectoryError, JSONDecodeError or UnicodeDecodeError tracebacks instead of one line
    the scripts print as it is."""
    run, expected = _broken_run(tmp_path, case)
    with pytest.raises(DmlError) as caught:
        read_run_results(run)
    message = str(caught.value)
    assert message.startswith(expected) and "\n" not in message
    assert type(caught.value) is DmlError


def test_non_object_results_is_a_dml_error_callers_can_tell_apart(tmp_path: Path) -> None:
    """Bug: a results.json holding a list read as a run (AttributeError on .get later), or
    reported so that a script cannot tell it from an unreadable file; and load_results
    no longer raising ValueError for it, which collect_runs relies on."""
    run, expected = _broken_run(tmp_path, "list")
    with pytest.raises(NotAnObjectError, match="^" + re.escape(expected) + "$"):
        read_run_results(run)
    with pytest.raises(ValueError):
        load_results(run / "results.json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_results_names_the_file(tmp_path: Path) -> None:
    """Bug: a results.json the user may not read escaping as a PermissionError traceback."""
    path = write(tmp_path, done(0.5))
    path.chmod(0)
    try:
        with pytest.raises(DmlError, match=f"^cannot read {re.escape(str(path))}: "):
            read_run_results(tmp_path)
    finally:
        path.chmod(0o644)


# ------------------------------------------------------------------ config keys


def test_flatten_and_ignored_keys() -> None:
    """Bug: lists split into keys (so [15, 16] stops comparing as one value), or per-job
    paths, run names and Hydra's settings treated as hyperparameters."""
    nested = {"pruning": {"units": [15, 16]}, "seed": 0, "empty": {}}
    assert flatten(nested) == {"pruning.units": [15, 16], "seed": 0}
    assert flatten(3) == {}
    ignored = ["hydra.job.num", "dataset.root", "data_dir", "run_name", "log.out_dir"]
    ignored += ["trainer.ckpt_path", "x.data_root"]
    assert all(is_ignored(k) for k in ignored)
    assert not any(is_ignored(k) for k in ["seed", "dataset.name", "root_lr", "lr_policy.every"])


# ------------------------------------------------------------------ statistics and cells


def test_mean_std_is_the_sample_std_by_hand() -> None:
    """Bug: the population std (ddof 0: 0.40 and 1.63 here) instead of the sample std (ddof 1)
    that the project's other seed statistics use, or one value giving a NaN / division error."""
    mean, std = mean_std([67.7, 68.5])
    # (0.4² + 0.4²) / (2 - 1) = 0.32, sqrt 0.565685
    assert mean == pytest.approx(68.1) and std == pytest.approx(0.565685, abs=1e-6)
    # (2² + 0 + 2²) / (3 - 1) = 4
    assert mean_std([60.0, 62.0, 64.0]) == pytest.approx((62.0, 2.0))
    assert mean_std([71.23]) == (71.23, 0.0)


def test_percent_cell_by_hand() -> None:
    """Bug: fractions not scaled to percent, a '± 0.00' on a single run, the population std,
    or no placeholder for a metric no run has."""
    assert percent_cell([0.6012]) == "60.12"
    assert percent_cell([0.677, 0.685]) == "68.10 ± 0.57"
    assert percent_cell([0.60, 0.62, 0.64]) == "62.00 ± 2.00"
    assert percent_cell([]) == "-"


# ------------------------------------------------------------------ package surface


def test_package_exports_the_same_objects() -> None:
    """Bug: dml.logging re-exporting a stale copy of the reader instead of dml.logging.runs'."""
    assert dml.logging.Run is runs.Run
    assert dml.logging.collect_runs is runs.collect_runs
    assert dml.logging.RESULTS_FILE == runs.RESULTS_FILE == "results.json"


def test_runs_module_imports_neither_torch_nor_the_trainer() -> None:
    """Bug: the run reader pulling in torch or dml.run, so summarising a sweep waits on (or,
    on a machine without CUDA wheels, fails at) importing the training stack."""
    code = "import sys, dml.logging.runs; print(sorted({'torch', 'dml.run'} & set(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert proc.stdout.strip() == "[]"
