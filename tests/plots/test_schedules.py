"""dml.plots.schedules (scripts/plot_schedules.py): supplement Figure 2 from the real
policies, one-line errors."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from dml.plots import schedules

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "plot_schedules.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# a 3-unit AutoLR run: epoch e, unit k has LR (k + 1) * 10 ** -(3 + e)
UNITS = ["unit1", "unit2", "unit3"]
LRS = [[1e-3, 2e-3, 3e-3], [1e-4, 2e-4, 3e-4], [1e-5, 2e-5, 3e-5]]


@pytest.fixture(scope="module")
def plot_schedules() -> ModuleType:
    return schedules


def write_run(run_dir: Path, results: Any) -> Path:
    """A run directory holding results.json with the given content."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir


def autolr_results() -> dict[str, Any]:
    """results.json of an AutoLR run with the known LRS (epochs 0, 1, 2)."""
    epochs = [{"epoch": e, "trials": 1, "lr": lrs} for e, lrs in enumerate(LRS)]
    return {"status": "completed", "autolr": {"units": UNITS, "epochs": epochs, "trials": []}}


def at(curve: Any, t: float) -> float:
    """The curve's LR at the step whose epoch time is t."""
    (index,) = np.flatnonzero(np.isclose(curve.t, t))
    return float(curve.lr[index])


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk, checking the signature first."""
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, cwd: Path
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of main(args) run in this process from the folder cwd."""
    monkeypatch.chdir(cwd)
    code = schedules.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("plot_schedules: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


# ------------------------------------------------------------------- curves


def test_curves_follow_the_options(plot_schedules: ModuleType) -> None:
    """Catches an option not reaching the policy (drop_epoch, gamma, cycles, resets or l_min
    left at its default) and an off-by-one step grid: 30 epochs of 4 steps, l_max 1e-2,
    l_min 1e-3; step drops x0.5 at 20; 3 cycles and 2 resets give periods of 10."""
    curves = plot_schedules.schedule_curves(
        epochs=30, l_max=1e-2, l_min=1e-3, drop_epoch=20, gamma=0.5, cycles=3, resets=2,
        steps_per_epoch=4,
    )  # fmt: skip
    assert sorted(curves) == ["cyclic", "sgdr", "step"]
    for curve in curves.values():
        assert len(curve.t) == 120 and curve.t[0] == 0.0 and curve.t[-1] == 29.75
    step, cyclic, sgdr = curves["step"], curves["cyclic"], curves["sgdr"]
    assert at(step, 0) == pytest.approx(1e-2) and at(step, 19.75) == pytest.approx(1e-2)
    assert at(step, 20) == pytest.approx(5e-3) and at(step, 29.75) == pytest.approx(5e-3)
    assert at(cyclic, 0) == pytest.approx(1e-3) and at(cyclic, 10) == pytest.approx(1e-3)
    assert at(cyclic, 2.5) == pytest.approx(5.5e-3) and at(cyclic, 25) == pytest.approx(1e-2)
    assert at(sgdr, 0) == pytest.approx(1e-2) and at(sgdr, 10) == pytest.approx(1e-2)
    assert at(sgdr, 5) == pytest.approx(5.5e-3)
    # 1e-3 + 4.5e-3 * (1 + cos(pi / 4)), a quarter into the third period
    assert at(sgdr, 22.5) == pytest.approx(8.681981e-3)


def test_default_curves_are_figure_2(plot_schedules: ModuleType) -> None:
    """Catches defaults drifting from supplement E (50 epochs, l_max 1e-3, l_min 1e-4, t_d 30,
    gamma 0.1, 3 cycles, 2 resets) or resets read as periods: the cyclic/SGDR period is
    50/3, so t = 8.5 is phase 0.51 and t = 17 is phase 0.02 of SGDR's second period."""
    curves = plot_schedules.schedule_curves(steps_per_epoch=2)
    assert curves["step"].t[-1] == 49.5
    assert at(curves["step"], 29.5) == pytest.approx(1e-3)
    assert at(curves["step"], 30) == pytest.approx(1e-4)
    assert at(curves["cyclic"], 0) == pytest.approx(1e-4)
    assert at(curves["cyclic"], 8.5) == pytest.approx(9.82e-4)  # 1e-4 + 9e-4 * 0.98
    assert at(curves["cyclic"], 16.5) == pytest.approx(1.18e-4)  # 1e-4 + 9e-4 * 0.02
    # just after the first restart: 1e-4 + 4.5e-4 * (1 + cos(0.02 pi))
    assert at(curves["sgdr"], 17) == pytest.approx(9.991120e-4)


def test_autolr_panel_draws_each_units_lrs(plot_schedules: ModuleType, tmp_path: Path) -> None:
    """Catches the (epoch, unit) table read transposed or a unit's line shifted by an epoch:
    unit2's staircase must be 2e-3, 2e-4, 2e-5 over epochs 0, 1, 2 (last repeated to 3)."""
    run = plot_schedules.read_autolr_run(write_run(tmp_path, autolr_results()))
    assert run.units == UNITS and run.epochs.tolist() == [0, 1, 2]
    curves = plot_schedules.schedule_curves(epochs=3, steps_per_epoch=1)
    fig = plot_schedules.plot(curves, run)
    autolr_ax = fig.axes[3]
    lines = {line.get_label(): line for line in autolr_ax.get_lines()}
    assert sorted(lines) == UNITS
    assert lines["unit2"].get_xdata().tolist() == [0, 1, 2, 3]
    assert lines["unit2"].get_ydata().tolist() == pytest.approx([2e-3, 2e-4, 2e-5, 2e-5])
    assert lines["unit3"].get_ydata()[0] == pytest.approx(3e-3)


# -------------------------------------------------------------- the script


def test_script_writes_figure_into_run_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Catches the default output path or the AutoLR panel going missing: the run's figure
    is <run_dir>/schedules.png, a real PNG with two rows of panels (at least 600 px tall)."""
    run_dir = write_run(tmp_path / "run", autolr_results())
    args = [str(run_dir), "--epochs", "12", "--drop-epoch", "8"]
    code, stdout, stderr = run_main(monkeypatch, capsys, *args, cwd=tmp_path)
    assert code == 0, stderr[-2000:]
    out = run_dir / "schedules.png"
    assert stdout.strip() == str(out)
    width, height = png_size(out)
    assert 800 <= width <= 3000 and 600 <= height <= 2000, (width, height)
    assert out.stat().st_size > 20_000


def test_script_without_run_dir_writes_three_panels_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Catches a crash without a run dir or a wrong default path (./schedules.png): one
    strip of three panels, much wider than tall."""
    code, _, stderr = run_main(monkeypatch, capsys, "--epochs", "6", cwd=tmp_path)
    assert code == 0, stderr[-2000:]
    width, height = png_size(tmp_path / "schedules.png")
    assert width > 2.5 * height and 300 <= height <= 800, (width, height)


def test_out_option(plot_schedules: ModuleType, tmp_path: Path) -> None:
    """Catches --out ignored or its missing folder not created."""
    out = tmp_path / "figs" / "fig2.png"
    assert plot_schedules.main(["--epochs", "4", "--out", str(out)]) == 0
    assert png_size(out)[0] > 0 and not (tmp_path / "schedules.png").exists()


# ------------------------------------------------------------------- errors


def test_missing_run_dir_exits_2_in_one_line(tmp_path: Path, script_cli, monkeypatch) -> None:
    """Catches a traceback or exit 1 for a mistyped run dir, and a figure written anyway (run
    as the script: the exit status and stderr the user sees)."""
    missing = tmp_path / "nope"
    monkeypatch.chdir(tmp_path)
    proc = script_cli(SCRIPT, str(missing))
    assert proc.returncode == 2 and proc.stdout == ""
    assert_one_line_error(proc.stderr, "run directory not found", str(missing))
    assert not (tmp_path / "schedules.png").exists()


@pytest.mark.parametrize(
    ("results", "needle"),
    [
        (None, "no results.json"),
        ({"status": "completed", "recall": {"1": 0.6}}, "has no autolr section"),
        ({"autolr": {"units": UNITS, "epochs": []}}, "autolr.epochs is empty"),
        (
            {"autolr": {"units": UNITS, "epochs": [{"epoch": 0, "lr": [1e-3, 2e-3]}]}},
            "autolr.epochs[0].lr should list 3 LRs",
        ),
    ],
)
def test_bad_run_is_one_line_error(
    plot_schedules: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    results: Any,
    needle: str,
) -> None:
    """Catches a KeyError/traceback on a run without results.json, on a step/cyclic run (no
    autolr section) or on a malformed one, instead of exit 2 and one line."""
    if results is not None:
        write_run(tmp_path, results)
    assert plot_schedules.main([str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_error(err, needle)
    assert not (tmp_path / "schedules.png").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--l-max", "0.001", "--l-min", "0.01"], "lr_policy.l_min=0.01"),
        (["--epochs", "0"], "--epochs=0"),
    ],
)
def test_bad_options_are_one_line_errors(
    plot_schedules: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    needle: str,
) -> None:
    """Catches the policy's DmlError (l_min above l_max) or an empty schedule escaping as a
    traceback."""
    assert plot_schedules.main([*args, "--out", str(tmp_path / "x.png")]) == 2
    assert_one_line_error(capsys.readouterr().err, needle)
    assert not (tmp_path / "x.png").exists()
