"""dml.reports.tables (scripts/report.py) over fake sweeps: each run's cell and text worked
out by hand."""

from __future__ import annotations

import importlib
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import dml.reports
from dml.reports import tables as report

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "report.py"

COL1, COL2 = "[1e-3, 1e-4]", "[1e-2, 1e-3]"


def config(
    policy: str = "step",
    lr: float = 1e-3,
    seed: int = 0,
    dataset: str = "synthetic",
    loss: str = "softmax",
    optimizer: str = "sgd",
    units: list[int] | None = None,
    remove_last: int = 1,
    epochs: int = 10,
    batch_size: int = 40,
    **policy_params,
) -> dict:
    """A resolved config as a run writes it (only the groups the report reads, plus paths)."""
    return {
        "dataset": {"name": dataset, "root": f"data/{dataset}_{seed}"},
        "model": {"arch": "resnet18"},
        "pruning": {"units": units or [], "remove_last": 0 if units else remove_last},
        "loss": {"name": loss},
        "optimizer": {"name": optimizer, "lr": lr},
        "lr_policy": {"name": policy, "l_max": lr, **policy_params},
        "autolr": {"alpha": 2.0, "beta": 0.4},
        "trainer": {"epochs": epochs, "batch_size": batch_size},
        "eval": {"selection": "test"},
        "seed": seed,
        "data_dir": "data",
        "run_name": f"{dataset}_{policy}_{seed}",
    }


def recalls(r1: float) -> dict:
    """R@1 and, 0.1 / 0.2 / 0.25 above it, R@2 / R@4 / R@8 (fractions)."""
    return {"R@1": r1, "R@2": r1 + 0.1, "R@4": r1 + 0.2, "R@8": r1 + 0.25}


def write(
    run: Path,
    cfg: dict,
    r1: float | None,
    status: str = "completed",
    protocol: str | None = "test",
    best: float | None = None,
) -> None:
    """results.json; protocol None writes an old file without the selection block."""
    run.mkdir(parents=True)
    res: dict = {"status": status, "config": cfg, "wall_time_s": 1.0}
    if r1 is None:
        res["error"] = "CUDA out of memory\nTraceback ..."
    else:
        res["metrics"] = {"final": recalls(r1), "best": recalls(best if best else r1)}
        if protocol is not None:
            res["selection"] = {"protocol": protocol, "epoch": 7, "test": recalls(r1)}
    (run / "results.json").write_text(json.dumps(res))


def run_report(out: Path, table: int, *dirs: Path) -> str:
    assert report.main([*map(str, dirs), "--table", str(table), "--out", str(out)]) == 0
    return out.read_text()


def tables(text: str) -> list[dict[str, dict[str, str]]]:
    """Each markdown table as {row label: {column header: cell}} (label: hyper-parameters
    for Table 4, Method for Table 2)."""
    found, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("| "):
            i += 1
            continue
        head = [c.strip() for c in lines[i].strip("|").split("|")]
        label = 1 if head[1] == "hyper-parameters" else 0
        body = {}
        i += 2
        while i < len(lines) and lines[i].startswith("| "):
            cells = [c.strip() for c in lines[i].strip("|").split("|")]
            body[cells[label]] = dict(zip(head, cells))
            i += 1
        found.append(body)
    return found


@pytest.fixture
def table4_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    # drop 8 of 10 epochs -> t_d 40; two seeds: 67.7 and 68.5 -> 68.10 ± sqrt(0.32 / 1) = 0.57
    write(sweep / "0", config(seed=0, drop_epoch=8, gamma=0.5), 0.677)
    write(sweep / "1", config(seed=1, drop_epoch=8, gamma=0.5), 0.685)
    write(sweep / "2", config("cyclic", lr=1e-2, l_min=1e-3, cycles=7), 0.6012)
    write(sweep / "3", config("constant"), 0.55)
    write(sweep / "4", config(seed=1, drop_epoch=6, gamma=0.1), None, status="failed")
    # val protocol: selection.test (71.23) is the number, not metrics.best (80.00)
    write(
        sweep / "5" / "nested" / "deeper",
        config("autolr", lr=1e-3, seed=0),
        0.7123,
        protocol="val",
        best=0.80,
    )
    write(sweep / "6", config("sgdr", lr=1e-2, l_min=1e-3, resets=8), 0.65, protocol=None)
    # drop 6 of 10 -> t_d 30, at l_max 1e-2: the second column
    write(sweep / "7", config(lr=1e-2, drop_epoch=6, gamma=0.1), 0.6321)
    write(sweep / "8", config(drop_epoch=7, gamma=0.1), 0.62)  # t_d 35: not a paper row
    write(sweep / "9", config("cyclic", lr=1e-2, l_min=1e-4, cycles=7), 0.61)  # no such column
    return sweep


def test_two_seeds_average_in_their_cell_with_the_paper_value(table4_sweep, tmp_path):
    """Bug: seeds not averaged into one cell, population std (0.40) instead of the sample std
    (0.57), or a 10-epoch run's drop epoch 8 not mapped to the paper's t_d 40."""
    (body,) = tables(run_report(tmp_path / "r.md", 4, table4_sweep))
    row = body["t_d: 40, γ: 0.5"]
    # (0.4² + 0.4²) / (2 - 1) = 0.32, sqrt 0.5657; R@8 is R@1 + 25, the same spread
    assert row[f"{COL1} R@1"] == "68.10 ± 0.57 [n=2] (68.75)"
    assert row[f"{COL1} R@8"] == "93.10 ± 0.57 [n=2] (92.76)"
    assert row[f"{COL2} R@1"] == "— (66.64)"
    assert row["Method"] == ""  # the method name only heads its group, as in the paper
    assert body["t_d: 30, γ: 0.1"]["Method"] == "Step-decay"


def test_each_policy_lands_in_its_row_and_column(table4_sweep, tmp_path):
    """Bug: cyclic / SGDR / step placed by l_max alone or in the wrong column, SGDR keyed by
    something other than lr_policy.resets, or a run dropped from the table."""
    (body,) = tables(run_report(tmp_path / "r.md", 4, table4_sweep))
    assert body["cycle: 7"][f"{COL2} R@1"] == "60.12 (68.55)"
    assert body["cycle: 7"][f"{COL1} R@1"] == "— (67.33)"
    assert body["n_reset: 8"][f"{COL2} R@2"] == "75.00 (79.34)"
    assert body["t_d: 30, γ: 0.1"][f"{COL2} R@1"] == "63.21 (66.95)"
    assert body["t_d: 30, γ: 0.1"][f"{COL1} R@1"] == "— (67.00)"


def test_autolr_uses_selection_test_and_spans_both_columns(table4_sweep, tmp_path):
    """Bug: metrics.best (80.00) reported for a val-protocol run, or the paper's AutoLR value
    missing from the column its run did not land in."""
    (body,) = tables(run_report(tmp_path / "r.md", 4, table4_sweep))
    row = body["α: 2, β: 0.4"]
    assert row["Method"] == "AutoLR"
    assert row[f"{COL1} R@1"] == "71.23 (70.10)"
    assert row[f"{COL2} R@1"] == "— (70.10)"


def test_caption_states_dataset_epochs_runs_and_protocols(table4_sweep, tmp_path):
    """Bug: the caption hides that the runs are synthetic, short, or mix protocols."""
    text = run_report(tmp_path / "r.md", 4, table4_sweep)
    caption = next(line for line in text.splitlines() if line.startswith("**Table 4"))
    assert "dataset synthetic (set against the paper's CUB-200 values)" in caption
    assert "10 epochs" in caption
    assert "round(drop_epoch × 50 / 10)" in caption
    # placed: 0, 1 (seed 1), 2, 5, 6, 7
    assert "6 runs, seeds 0, 1" in caption
    assert "protocol test (4 runs), test via metrics.best (1 run), val (1 run)" in caption


def test_runs_outside_the_paper_are_listed_and_failures_counted(table4_sweep, tmp_path):
    """Bug: runs that fit no row silently dropped, or failed runs not accounted for."""
    text = run_report(tmp_path / "r.md", 4, table4_sweep)
    outside = text.split("Not in the paper (3 runs):")[1].split("\n\n")[0].splitlines()
    by_run = {line.split("`")[1]: line for line in outside if line.startswith("- `")}
    assert sorted(by_run) == ["3", "8", "9"]
    assert "lr_policy constant" in by_run["3"]
    assert "lr_policy.name=constant" in by_run["3"]
    assert "no step row with t_d 35" in by_run["8"]
    assert "(0.01, 0.0001) is not a Table 4 column" in by_run["9"]
    assert "Not counted: 1 failed (`4`: CUDA out of memory)." in text


def test_cell_that_mixes_settings_is_flagged(tmp_path):
    """Bug: runs of different settings (batch size) averaged as if they were seeds; the std is
    the sample one: 60 and 62 give sqrt((1 + 1) / 1) = 1.41, not the population 1.00."""
    write(tmp_path / "s" / "0", config(seed=0, drop_epoch=6, gamma=0.2), 0.60)
    write(tmp_path / "s" / "1", config(seed=1, drop_epoch=6, gamma=0.2, batch_size=64), 0.62)
    text = run_report(tmp_path / "r.md", 4, tmp_path / "s")
    assert "61.00 ± 1.41 [n=2] (67.39)" in text
    assert (
        "- Step-decay t_d: 30, γ: 0.2 at [1e-3, 1e-4]: the runs differ in "
        "trainer.batch_size (40, 64)"
    ) in text


def test_several_dirs_feed_one_table(tmp_path):
    """Bug: only the first folder read, or same-named jobs (both '0') taken for one run."""
    write(tmp_path / "a" / "0", config(seed=0, drop_epoch=8, gamma=0.5), 0.677)
    write(tmp_path / "b" / "0", config(seed=1, drop_epoch=8, gamma=0.5), 0.685)
    (body,) = tables(run_report(tmp_path / "r.md", 4, tmp_path / "a", tmp_path / "b"))
    assert body["t_d: 40, γ: 0.5"][f"{COL1} R@1"] == "68.10 ± 0.57 [n=2] (68.75)"


def test_table2_rows_columns_and_synthetic_twin(tmp_path):
    """Bug: Table 2 rows chosen by the wrong recipe (pruning via remove_last or units,
    AutoLR, AdamW), a synthetic run not set against CUB-200, or non-Proxy-Anchor runs
    placed in this Proxy-Anchor table."""
    sweep = tmp_path / "t2"
    pa = {"loss": "proxy_anchor", "epochs": 40}
    official_cfg = config("step", dataset="cub200", optimizer="adamw", remove_last=0, **pa)
    write(sweep / "0", official_cfg, 0.70)
    write(sweep / "1", config("autolr", dataset="cars196", units=[15, 16], **pa), 0.88)
    write(sweep / "2", config("step", dataset="cars196", remove_last=2, **pa), 0.85)
    write(sweep / "3", config("autolr", dataset="synthetic", remove_last=2, **pa), 0.7512)
    write(sweep / "4", config("step", dataset="cub200", loss="softmax", remove_last=0), 0.6)
    write(sweep / "5", config("autolr", dataset="cub200", remove_last=0, **pa), 0.6)
    text = run_report(tmp_path / "r.md", 2, sweep)
    real, synthetic = tables(text)
    official = real["Proxy-Anchor + AdamW (Official version)"]
    assert official["CUB-200 R@1"] == "70.00 (69.7)"
    assert official["Cars-196 R@1"] == "— (87.7)"
    assert real["Proxy-Anchor + SGD + Pruning 15,16 + AutoLR"]["Cars-196 R@1"] == "88.00 (88.55)"
    assert real["Proxy-Anchor + SGD + Pruning 15,16"]["Cars-196 R@2"] == "95.00 (91.74)"
    assert real["Proxy-Anchor + SGD (Modified version)"]["CUB-200 R@1"] == "— (61.41)"
    twin = synthetic["Proxy-Anchor + SGD + Pruning 15,16 + AutoLR"]
    assert twin["synthetic → CUB-200 R@1"] == "75.12 (73.46)"
    assert "dataset synthetic, set against the paper's CUB-200 values" in text
    assert "- `4`: loss softmax (Table 2 is Proxy-Anchor)" in text
    assert "- `5`: Table 2 has no row for sgd, pruning none, lr_policy autolr" in text


@pytest.mark.parametrize(
    ("drop", "epochs", "t_d"),
    [(6, 10, 30), (8, 10, 40), (30, 50, 30), (30, 40, 38)],
)
def test_drop_epoch_on_the_paper_scale(drop, epochs, t_d):
    """Bug: a 10-epoch twin's drop epoch compared raw with the paper's 50-epoch t_d."""
    assert report.paper_drop_epoch(drop, epochs) == t_d


def test_periodic_step_counts_only_when_it_drops_once():
    """Bug: a periodic step (lr_policy.every) taken for the paper's single drop at any period."""
    flat = {
        "lr_policy.name": "step",
        "lr_policy.l_max": 1e-3,
        "lr_policy.gamma": 0.1,
        "lr_policy.drop_epoch": 30,
        "trainer.epochs": 10,
    }
    assert report.table4_key(flat | {"lr_policy.every": 6})[1] == {"t_d": 30, "gamma": 0.1}
    assert "periodic" in report.table4_key(flat | {"lr_policy.every": 3})


def test_reader_comes_from_the_package_without_sys_path_edits(monkeypatch):
    """Bug: report.py putting scripts/ on sys.path to import aggregate_results (the project
    installs dml instead), or carrying its own copy of the reader that can drift from it."""
    from dml.logging import runs

    before = list(sys.path)
    # a second, fresh import of the module (the first is put back afterwards), then the script
    monkeypatch.delitem(sys.modules, "dml.reports.tables")
    monkeypatch.setattr(dml.reports, "tables", report)
    fresh = importlib.import_module("dml.reports.tables")
    script = runpy.run_path(str(SCRIPT), run_name="report")
    assert sys.path == before
    assert fresh is not report and script["main"] is fresh.main
    assert fresh.Run is runs.Run
    assert fresh.collect_runs is runs.collect_runs
    assert fresh.percent_cell is runs.percent_cell


def test_no_results_is_a_one_line_error(tmp_path):
    """Bug: an empty folder giving an all-dash table and exit 0, hiding a wrong path (run as a
    program: the exit status and stderr the user sees)."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--table", "4"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "no results.json" in proc.stderr


def test_no_placed_run_still_shows_the_paper_table(tmp_path):
    """Bug: a sweep whose runs all fall outside the paper crashing instead of saying so."""
    write(tmp_path / "s" / "0", config("constant"), 0.55)
    write(tmp_path / "s" / "1", config(drop_epoch=6, gamma=0.1), None, status="failed")
    text = run_report(tmp_path / "r.md", 4, tmp_path / "s")
    (body,) = tables(text)
    assert body["t_d: 30, γ: 0.1"][f"{COL1} R@1"] == "— (67.00)"
    assert "No completed run fits a row of this table" in text
    assert "Not in the paper (1 run):" in text
    assert "Not counted: 1 failed (`1`: CUDA out of memory)." in text


def classification(
    r1: float, dataset: str, policy: str, removed: int = 0, units: list | None = None
) -> tuple[dict, float]:
    """A task=classification config and its top-1 (the report reads selection.test.top1)."""
    cfg = config(policy, dataset=dataset, remove_last=removed, units=units, epochs=40)
    cfg["task"] = "classification"
    return cfg, r1


def write_top1(run: Path, cfg: dict, top1: float) -> None:
    run.mkdir(parents=True)
    res = {
        "status": "completed",
        "config": cfg,
        "wall_time_s": 1.0,
        "metrics": {"final": {"top1": top1}, "best": {"top1": top1}},
        "selection": {"protocol": "test", "epoch": 3, "test": {"top1": top1}},
    }
    (run / "results.json").write_text(json.dumps(res))


def test_table3_rows_by_pruning_and_autolr_columns_by_dataset(tmp_path):
    """Bug: Table 3 rows chosen by the wrong pruning count or policy, an aircraft run in
    another column, a retrieval run placed among top-1 values, or the paper's values
    misread (supplement D: e.g. Pruning 16 + AutoLR on FGVC-CUB 80.34)."""
    sweep = tmp_path / "t3"
    write_top1(sweep / "0", *classification(0.8012, "cub200", "autolr", units=[16]))
    write_top1(sweep / "1", *classification(0.80, "aircraft", "step", removed=0))
    write_top1(sweep / "2", *classification(0.82, "aircraft", "step", removed=0))
    write_top1(sweep / "3", *classification(0.88, "cars196", "autolr", units=[15, 16]))
    write_top1(sweep / "4", *classification(0.5, "synthetic", "step", removed=2))
    write(sweep / "5", config("step", dataset="cub200"), 0.6)  # retrieval: not Table 3
    text = run_report(tmp_path / "r.md", 3, sweep)
    real, twin = tables(text)
    assert real["Pruning 16 + AutoLR"]["FGVC-CUB top-1"] == "80.12 (80.34)"
    # 80 and 82: mean 81, sample std sqrt(2) = 1.41
    assert real["None pruned"]["FGVC-Aircraft top-1"] == "81.00 ± 1.41 [n=2] (77.83)"
    assert real["Pruning 15,16 + AutoLR"]["FGVC-Cars top-1"] == "88.00 (88.30)"
    assert real["Pruning 15,16"]["FGVC-Cars top-1"] == "— (85.96)"
    assert twin["Pruning 15,16"]["synthetic → FGVC-CUB top-1"] == "50.00 (78.74)"
    assert len(real) == 6 and "Top-1 accuracy in percent" in text
    assert "- `5`: task retrieval (Table 3 is task=classification)" in text
