"""dml.plots.alpha_beta (scripts/plot_alpha_beta.py): the alpha x beta grid by hand, and the
CLI over written runs."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dml.plots import alpha_beta

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "plot_alpha_beta.py"


@pytest.fixture(scope="module")
def pab() -> ModuleType:
    return alpha_beta


def config(alpha: float, beta: float, seed: int = 0, policy: str = "autolr") -> dict[str, Any]:
    """The parts of a resolved train config the script reads, plus a few that stay fixed."""
    return {
        "dataset": {"name": "cub200", "root": "data/CUB_200_2011"},
        "lr_policy": {"name": policy, "l_max": 0.001},
        "autolr": {"alpha": alpha, "beta": beta, "threshold": 0.94},
        "seed": seed,
    }


def completed(r1: float | None, final: float = 0.1, r4: float = 0.9) -> dict[str, Any]:
    """A completed run; r1=None writes an older results.json without a selection block."""
    res: dict[str, Any] = {"status": "completed", "metrics": {"final": {"R@1": final, "R@4": r4}}}
    if r1 is not None:
        res["selection"] = {"protocol": "val", "epoch": 3, "test": {"R@1": r1, "R@4": r4}}
    return res


# (alpha, beta, seed, results); expected cells worked out by hand in test_cli_prints_grid.
SWEEP: list[tuple[float, float, int, dict[str, Any]]] = [
    (0.5, 0.2, 0, completed(0.70, r4=0.90)),
    (0.5, 0.2, 1, completed(0.74, r4=0.92)),
    (0.5, 0.2, 2, completed(0.75, r4=0.94)),
    (2.0, 0.2, 0, completed(None, final=0.80, r4=0.95)),  # no selection: metrics.final
    (2.0, 0.2, 1, completed(0.78, r4=0.97)),
    (10.0, 0.2, 0, {"status": "infeasible", "error": "lower bound above upper bound"}),
    (10.0, 0.2, 1, {"status": "infeasible", "error": "lower bound above upper bound"}),
    (0.5, 0.4, 0, completed(0.60, r4=0.80)),
    (0.5, 0.4, 1, {"status": "infeasible", "error": "lower bound above upper bound"}),
    (2.0, 0.4, 0, {"status": "failed", "error": "CUDA out of memory"}),
]


def write_sweep(sweep: Path, extra: list[tuple[dict[str, Any], dict[str, Any]]] = ()) -> None:
    """Jobs as Hydra writes them: <sweep>/<n>/results.json, in shuffled order."""
    jobs = [(config(a, b, s), dict(res)) for a, b, s, res in SWEEP] + list(extra)
    order = np.random.default_rng(0).permutation(len(jobs))
    for n, i in enumerate(order):
        cfg, res = jobs[i]
        (sweep / str(n)).mkdir(parents=True)
        (sweep / str(n) / "results.json").write_text(json.dumps({**res, "config": cfg}))


def grid_cells(stdout: str) -> tuple[list[str], dict[str, list[str]]]:
    """Column headers (alphas) and the cells of each beta row of the printed table."""
    lines = stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.strip().startswith("beta \\ alpha"))
    alphas = re.split(r"\s{2,}", lines[head].strip())[1:]
    rows = {}
    for line in lines[head + 1 :]:
        if line.startswith("best:"):
            break
        beta, *cells = re.split(r"\s{2,}", line.strip())
        rows[beta] = cells
    return alphas, rows


# ------------------------------------------------------------------ pure parts


def test_build_grid_by_hand(pab: ModuleType) -> None:
    """Bugs caught: infeasible or failed runs averaged in as 0, a cell hatched when only some
    of its runs were infeasible, alphas and betas transposed, values sorted as text
    (10 before 2), the best cell taken over NaNs or from the wrong axis."""
    Run = pab.Run
    runs = [
        Run(10.0, 0.4, "completed", 50.0),
        Run(0.5, 0.2, "completed", 70.0),
        Run(0.5, 0.2, "completed", 74.0),
        Run(0.5, 0.2, "completed", 75.0),
        Run(0.5, 0.4, "completed", 60.0),
        Run(0.5, 0.4, "infeasible", None),
        Run(2.0, 0.2, "infeasible", None),
        Run(2.0, 0.2, "infeasible", None),
        Run(2.0, 0.4, "failed", None),
        Run(2.0, 0.4, "completed", None),  # completed without the metric: not averaged
    ]
    grid = pab.build_grid(runs)
    assert grid.alphas == [0.5, 2.0, 10.0]
    assert grid.betas == [0.2, 0.4]
    # rows beta, columns alpha; (70 + 74 + 75) / 3 = 73
    np.testing.assert_allclose(
        grid.mean, [[73.0, np.nan, np.nan], [60.0, np.nan, 50.0]], equal_nan=True
    )
    assert grid.n.tolist() == [[3, 0, 0], [1, 0, 1]]
    assert grid.n_infeasible.tolist() == [[0, 2, 0], [1, 0, 0]]
    assert grid.n_runs.tolist() == [[3, 2, 0], [2, 2, 1]]
    assert grid.infeasible.tolist() == [[False, True, False], [False, False, False]]
    assert grid.best == (0, 0)


def test_build_grid_without_values_has_no_best(pab: ModuleType) -> None:
    """Bug caught: nanargmax on an all-NaN grid raising instead of "no best cell"."""
    grid = pab.build_grid([pab.Run(3.0, 0.1, "infeasible", None)])
    assert grid.infeasible.tolist() == [[True]] and grid.best is None
    assert "best: none" in pab.table(grid, "R@1")


def test_run_value_prefers_selection_and_is_percent(pab: ModuleType) -> None:
    """Bugs caught: metrics.final used when the run selected another epoch, fractions shown as
    percent (0.72 instead of 72), an older results.json without selection dropped."""
    assert pab.run_value(completed(0.72, final=0.5), "R@1") == pytest.approx(72.0)
    assert pab.run_value(completed(None, final=0.5), "R@1") == pytest.approx(50.0)
    assert pab.run_value(completed(0.72, r4=0.9), "R@4") == pytest.approx(90.0)
    assert pab.run_value(completed(0.72), "MAP@R") is None
    assert pab.run_value({"status": "infeasible"}, "R@1") is None
    assert pab.run_value({"metrics": {"final": {"R@1": math.nan}}}, "R@1") is None


# ------------------------------------------------------------------ end to end


def test_cli_prints_grid_and_draws_it(
    pab: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bugs caught: a non-AutoLR run (its config still has autolr.alpha/beta) counted in a
    cell, seeds not averaged, selection.test ignored, rows or columns out of order, the best
    cell wrong, infeasible, failed and empty cells not told apart, no outline or hatching."""
    sweep = tmp_path / "sweep"
    step = completed(0.99, final=0.99, r4=0.99)
    write_sweep(sweep, extra=[(config(2.0, 0.4, policy="step"), step)])
    code = pab.main([str(sweep)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    alphas, rows = grid_cells(stdout)
    assert alphas == ["0.5", "2", "10"]
    assert rows == {
        "0.2": ["73.00 (n=3)", "79.00 (n=2)", "infeasible"],  # (70+74+75)/3, (80+78)/2
        "0.4": ["60.00 (n=1, 1 infeasible)", "no result", "-"],
    }
    assert "best: alpha=2 beta=0.2 R@1 79.00 (n=2)" in stdout
    assert stdout.strip().splitlines()[-1] == str(sweep / "alpha_beta.png")
    notes = stderr.strip().splitlines()
    assert sorted(notes) == [
        "note: 1 run(s) not counted: not AutoLR",
        "note: 1 run(s) not counted: status failed",
    ]
    png = np.asarray(Image.open(sweep / "alpha_beta.png").convert("RGB")).astype(int)
    assert png.shape[0] > 300 and png.shape[1] > 500
    red = (png[..., 0] > 230) & (png[..., 1] < 30) & (png[..., 2] < 30)
    assert red.sum() > 200  # the best cell's outline (and its legend swatch)
    hatch_grey = (np.abs(png - 217) <= 2).all(axis=-1)
    assert hatch_grey.sum() > 1000  # three infeasible cells filled grey under the hatching


def test_cli_metric_and_out(
    pab: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bugs caught: --metric ignored (always R@1), --out ignored, the default PNG written too."""
    sweep = tmp_path / "sweep"
    write_sweep(sweep)
    out = tmp_path / "figs" / "r4.png"
    code = pab.main([str(sweep), "--metric", "R@4", "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    _, rows = grid_cells(stdout)
    assert rows["0.2"][:2] == ["92.00 (n=3)", "96.00 (n=2)"]  # (90+92+94)/3, (95+97)/2
    assert rows["0.4"][0] == "80.00 (n=1, 1 infeasible)"
    assert "best: alpha=2 beta=0.2 R@4 96.00 (n=2)" in stdout
    assert Image.open(out).format == "PNG"
    assert not (sweep / "alpha_beta.png").exists()


def mixed_sweep(tmp_path: Path) -> Path:
    """SWEEP (CUB) plus one Cars run at (0.5, 0.2) with R@1 30: a sweep over two datasets."""
    sweep = tmp_path / "sweep"
    other = config(0.5, 0.2, seed=3)
    other["dataset"] = {"name": "cars196", "root": "data/cars196"}
    write_sweep(sweep, extra=[(other, completed(0.30))])
    return sweep


def test_runs_differing_beyond_alpha_beta_seed_are_flagged(
    pab: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bug caught: a sweep that also varied the dataset silently averaged across datasets."""
    sweep = mixed_sweep(tmp_path)
    assert pab.main([str(sweep)]) == 0
    out, err = capsys.readouterr()
    assert "note: runs also differ in dataset.name, dataset.root" in err
    assert grid_cells(out)[1]["0.2"][0] == "62.25 (n=4)"  # (70+74+75+30)/4


def test_dataset_option_keeps_one_datasets_runs(
    pab: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bug caught: Figure 1's mixed CUB + Cars sweep drawn as one averaged heatmap."""
    sweep = mixed_sweep(tmp_path)
    assert pab.main([str(sweep), "--dataset", "cub200"]) == 0
    out, err = capsys.readouterr()
    assert "differ in dataset" not in err
    assert grid_cells(out)[1]["0.2"][0] == "73.00 (n=3)"  # (70+74+75)/3, Cars left out
    assert pab.main([str(sweep), "--dataset", "cars196"]) == 0
    assert grid_cells(capsys.readouterr()[0])[1]["0.2"][0] == "30.00 (n=1)"
    assert pab.main([str(sweep), "--dataset", "sop"]) == 2
    assert "no AutoLR runs" in capsys.readouterr()[1]


def test_unreadable_results_are_noted_and_skipped(
    pab: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bug caught: a half-written, binary or non-object results.json (read through
    dml.logging.runs) crashing the figure instead of being skipped with a note."""
    sweep = tmp_path / "sweep"
    write_sweep(sweep)
    bad = {"20": b"{half", "21": b"\xff\xfe", "22": b"[1, 2]"}
    for name, content in bad.items():
        (sweep / name).mkdir()
        (sweep / name / "results.json").write_bytes(content)
    assert pab.main([str(sweep)]) == 0
    out, err = capsys.readouterr()
    skipped = [line for line in err.splitlines() if "skipped unreadable" in line]
    assert skipped == [f"note: skipped unreadable {sweep / n / 'results.json'}" for n in bad]
    assert grid_cells(out)[1]["0.2"][0] == "73.00 (n=3)"  # (70+74+75)/3, as without them


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("case", ["missing", "empty", "no_autolr"])
def test_no_runs_is_one_line_error(
    pab: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """Bug caught: a traceback or an empty figure instead of one `error:` line and exit 2."""
    sweep = tmp_path / "sweep"
    if case != "missing":
        (sweep / "0").mkdir(parents=True)
    if case == "no_autolr":
        res = {**completed(0.5), "config": config(2.0, 0.4, policy="step")}
        (sweep / "0" / "results.json").write_text(json.dumps(res))
    code = pab.main([str(sweep)])
    stdout, stderr = capsys.readouterr()
    assert code == 2 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr
    if case == "missing":
        assert lines[0] == f"error: sweep directory not found: {sweep}"
    else:
        assert (
            lines[0] == f"error: no AutoLR runs (results.json with lr_policy autolr) under {sweep}"
        )
        assert not (sweep / "alpha_beta.png").exists()


def test_no_runs_is_one_line_error_as_a_program(tmp_path: Path, script_cli) -> None:
    """Bug caught: the one-line error only when main() is called with its arguments, a
    traceback or another exit status from the script's command line."""
    sweep = tmp_path / "sweep"
    proc = script_cli(SCRIPT, str(sweep))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"error: sweep directory not found: {sweep}\n"
