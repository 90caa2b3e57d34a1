"""dml.reports.aggregate (scripts/aggregate_results.py) over fake sweeps: values worked out
by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from dml.reports import aggregate

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "aggregate_results.py"


def config(seed: int = 0, gamma: float = 0.1, arch: str = "resnet18") -> dict:
    """A resolved config whose path-like keys differ per seed, as a real sweep's do."""
    return {
        "dataset": {"name": "synthetic", "root": f"data/synthetic_s{seed}"},
        "model": {"arch": arch},
        "lr_policy": {"name": "step", "l_max": 1e-3, "drop_epoch": 6, "gamma": gamma},
        "trainer": {"epochs": 10},
        "seed": seed,
        "data_dir": f"/tmp/d{seed}",
        "run_name": f"run{seed}",
        "hydra": {"job": {"num": seed}},
    }


def write(
    run: Path,
    cfg: dict,
    r1: float | None,
    status: str = "completed",
    best: float | None = None,
    selection: bool = True,
) -> None:
    """results.json with R@2/4/8 = R@1 + 0.1/0.2/0.3; best differs from selection if given."""
    run.mkdir(parents=True)
    res: dict = {"status": status, "config": cfg}
    if r1 is not None:
        metrics = {"R@1": r1, "R@2": r1 + 0.1, "R@4": r1 + 0.2, "R@8": r1 + 0.3}
        res["metrics"] = {"final": metrics, "best": {"R@1": best if best is not None else r1}}
        if selection:
            res["selection"] = {"protocol": "test", "epoch": 9, "test": metrics}
    else:
        res["error"] = "CUDA out of memory\ntraceback..."
    (run / "results.json").write_text(json.dumps(res))


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of main(args), run in this process."""
    code = aggregate.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_columns_are_only_the_config_keys_that_vary(tmp_path):
    """Bug: constant keys (model.arch) or per-job paths/run names/hydra shown as columns."""
    write(tmp_path / "0", config(seed=0, gamma=0.1), 0.5)
    write(tmp_path / "1", config(seed=1, gamma=0.5), 0.6)
    table = aggregate.build_table(aggregate.collect_runs([tmp_path]))
    assert table.headers == [
        "run",
        "lr_policy.gamma",
        "seed",
        "R@1",
        "R@2",
        "R@4",
        "R@8",
        "status",
    ]


def test_rows_sorted_best_first_in_percent(tmp_path):
    """Bug: ascending sort, fractions left unscaled, or a failed run (no metrics) crashing."""
    write(tmp_path / "0", config(seed=0), 0.677)
    write(tmp_path / "1", config(seed=1), 0.685)
    write(tmp_path / "2", config(seed=2), None, status="failed")
    table = aggregate.build_table(aggregate.collect_runs([tmp_path]))
    assert table.rows == [
        ["1", "1", "68.50", "78.50", "88.50", "98.50", "completed"],
        ["0", "0", "67.70", "77.70", "87.70", "97.70", "completed"],
        ["2", "2", "-", "-", "-", "-", "failed"],
    ]


def test_sort_by_another_metric(tmp_path):
    """Bug: --sort ignored (always R@1): here R@8 ranks the runs the other way round."""
    write(tmp_path / "0", config(seed=0), 0.60)  # R@8 0.90
    write(tmp_path / "1", config(seed=1), 0.50)
    res = json.loads((tmp_path / "1" / "results.json").read_text())
    res["selection"]["test"]["R@8"] = 0.95
    (tmp_path / "1" / "results.json").write_text(json.dumps(res))
    table = aggregate.build_table(aggregate.collect_runs([tmp_path]), sort="R@8")
    assert [row[0] for row in table.rows] == ["1", "0"]
    assert table.rows[0][table.headers.index("R@8")] == "95.00"


def test_group_by_seed_gives_mean_sample_std_and_n(tmp_path):
    """Bug: population std (1.63 for 60/62/64, ddof 0) instead of the sample std (2.00, ddof 1)
    the project's other seed statistics use, or seeds not collapsed into one row per setting."""
    for seed, r1 in enumerate([0.60, 0.62, 0.64]):
        write(tmp_path / f"a{seed}", config(seed=seed, gamma=0.1), r1)
    write(tmp_path / "b0", config(seed=0, gamma=0.5), 0.677)
    write(tmp_path / "b1", config(seed=1, gamma=0.5), 0.685)
    table = aggregate.build_table(aggregate.collect_runs([tmp_path]), group_by="seed")
    assert table.headers[:3] == ["lr_policy.gamma", "seeds", "n"]
    # 62 ± sqrt((4 + 0 + 4) / (3 - 1)) = 2.00; 68.1 ± sqrt((0.16 + 0.16) / (2 - 1)) = 0.5657
    assert [row[:4] for row in table.rows] == [
        ["0.5", "0,1", "2", "68.10 ± 0.57"],
        ["0.1", "0,1,2", "3", "62.00 ± 2.00"],
    ]


def test_selection_block_wins_over_best_and_old_files_fall_back_to_best(tmp_path):
    """Bug: metrics.best (or final) shown although the run's protocol picked selection.test."""
    write(tmp_path / "new", config(seed=0), 0.70, best=0.80)
    write(tmp_path / "old", config(seed=1), 0.10, best=0.55, selection=False)
    runs = {r.name: r for r in aggregate.collect_runs([tmp_path])}
    assert runs["new"].metrics["R@1"] == 0.70
    assert runs["old"].metrics["R@1"] == 0.55


def test_jobs_nested_deeper_are_found_in_natural_order(tmp_path):
    """Bug: only <sweep>/<n>/results.json read, or job 10 listed before job 2."""
    for name in ["10", "2", "sub/inner/3"]:
        write(tmp_path / name, config(), None, status="infeasible")
    assert [r.name for r in aggregate.collect_runs([tmp_path])] == ["2", "10", "sub/inner/3"]


def test_printed_table_is_aligned(tmp_path, capsys):
    """Bug: rows printed as Python dicts (the old output) or columns that do not line up."""
    write(tmp_path / "0", config(seed=0, gamma=0.1), 0.5)
    write(tmp_path / "1", config(seed=1, gamma=0.25), 0.0512)
    code, stdout, stderr = run_main(capsys, str(tmp_path))
    assert code == 0, stderr
    lines = stdout.splitlines()
    header, rule, first, second = lines[:4]
    assert "{" not in stdout
    assert set(rule) == {"-", " "}
    # R@1 is right-aligned: every row's cell ends where the header's label ends
    end = header.index("R@1") + len("R@1")
    assert first[:end].endswith("50.00")
    assert second[:end].endswith(" 5.12")
    assert first.index("0.1") == second.index("0.25") == header.index("lr_policy.gamma")


def test_md_and_csv_hold_the_printed_cells(tmp_path, capsys):
    """Bug: --md / --csv writing a different table (raw fractions, other columns) than printed."""
    sweep = tmp_path / "sweep"
    write(sweep / "0", config(seed=0), 0.677)
    write(sweep / "1", config(seed=1), 0.685)
    md, out_csv = tmp_path / "t.md", tmp_path / "t.csv"
    args = [str(sweep), "--group-by", "seed", "--md", str(md), "--csv", str(out_csv)]
    code, _, stderr = run_main(capsys, *args)
    assert code == 0, stderr
    rows = list(csv.reader(out_csv.open()))
    assert rows == [
        ["seeds", "n", "R@1", "R@2", "R@4", "R@8", "status"],
        ["0,1", "2", "68.10 ± 0.57", "78.10 ± 0.57", "88.10 ± 0.57", "98.10 ± 0.57", "completed"],
    ]
    lines = md.read_text().splitlines()
    assert lines[0] == "| seeds | n | R@1 | R@2 | R@4 | R@8 | status |"
    assert lines[1] == "|---|---:|---:|---:|---:|---:|---|"
    assert lines[2] == (
        "| 0,1 | 2 | 68.10 ± 0.57 | 78.10 ± 0.57 | 88.10 ± 0.57 | 98.10 ± 0.57 | completed |"
    )


def test_failed_runs_are_counted_with_their_error(tmp_path, capsys):
    """Bug: a failed run's reason hidden, so the reader cannot tell why a row is empty."""
    write(tmp_path / "0", config(seed=0), 0.5)
    write(tmp_path / "1", config(seed=1), None, status="failed")
    _, stdout, _ = run_main(capsys, str(tmp_path))
    assert "2 runs under" in stdout
    assert "1 completed, 1 failed" in stdout
    assert "1: failed: CUDA out of memory" in stdout


def test_empty_folder_is_a_one_line_error(tmp_path, script_cli):
    """Bug: an empty sweep printing an empty table (or a traceback) with exit status 0 (run as
    the script: the exit status and stderr the user sees)."""
    proc = script_cli(SCRIPT, str(tmp_path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0
    assert "no results.json" in proc.stderr
