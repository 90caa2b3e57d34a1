"""scripts/aggregate_results.py over a fake sweep."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "aggregate", ROOT / "scripts" / "aggregate_results.py"
)
aggregate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(aggregate)


def write(run: Path, status: str, alpha: float, r1: float | None) -> None:
    run.mkdir(parents=True)
    res = {
        "status": status,
        "config": {"autolr": {"alpha": alpha}, "lr_policy": {"name": "autolr"}},
        "metrics": {"final": {"R@1": r1}} if r1 is not None else {},
    }
    (run / "results.json").write_text(json.dumps(res))


def test_rows_and_csv(tmp_path, capsys):
    write(tmp_path / "0", "infeasible", 50.0, None)
    write(tmp_path / "1", "completed", 2.0, 0.5)
    rows = aggregate.collect(tmp_path)
    assert [(r["run"], r["status"], r["autolr.alpha"], r["R@1"]) for r in rows] == [
        ("0", "infeasible", 50.0, None),
        ("1", "completed", 2.0, 0.5),
    ]
    out = tmp_path / "t.csv"
    assert aggregate.main([str(tmp_path), "--csv", str(out)]) == 0
    assert len(list(csv.DictReader(out.open()))) == 2


def test_empty_folder_is_an_error(tmp_path, capsys):
    assert aggregate.main([str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err
