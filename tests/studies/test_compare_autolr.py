"""dml.studies.compare_autolr: the arms' overrides, the reading, the table, from finished runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dml.studies import compare_autolr as cmp


def test_each_arm_changes_only_what_it_is_about(tmp_path):
    """Bug: an arm testing something else than its name (replay reading another seed's run,
    the momentum switch on the wrong policy, AutoLR without the drop the others share)."""
    out = tmp_path
    assert cmp.arm_overrides("autolr", 10, out, 0) == ["lr_policy=autolr", "autolr.drop_epoch=8"]
    assert cmp.arm_overrides("autolr_keep_momentum", 10, out, 0)[-1] == (
        "autolr.reset_momentum=false"
    )
    assert cmp.arm_overrides("replay", 10, out, 2) == [
        "lr_policy=replay",
        f"lr_policy.run={out / 'autolr_seed2'}",
    ]
    assert cmp.arm_overrides("constant_reset", 10, out, 0) == [
        "lr_policy=constant",
        "optimizer.reset_momentum=true",
    ]


def _finished(out: Path, arm: str, seed: int, r1: float, passes: list[float] | None) -> None:
    run = out / f"{arm}_seed{seed}"
    run.mkdir(parents=True)
    saved = {
        "status": "completed",
        "selection": {"test": {"R@1": r1 / 100}},
        "wall_time_s": 100.0 + seed,
        "history": [{"epoch": e} for e in range(2)],
    }
    if passes:
        saved["autolr"] = {
            "epochs": [{"passes": p, "full_score": 1.0, "threshold": 0.9} for p in passes]
        }
    (run / "results.json").write_text(json.dumps(saved))


def test_finished_runs_give_the_table_and_the_reading(tmp_path, monkeypatch):
    """Bug: an arm's mean over the wrong runs, AutoLR's passes not counted, or the reading
    naming the wrong side when replay sits next to constant."""
    r1 = {"constant": (88, 90), "autolr": (84, 84), "autolr_keep_momentum": (85, 85)}
    r1 |= {"replay": (89, 89), "constant_reset": (87, 89)}
    for arm, values in r1.items():
        for seed, value in enumerate(values):
            passes = [2.0, 1.0] if arm.startswith("autolr") else None
            _finished(tmp_path, arm, seed, value, passes)
    monkeypatch.setattr(cmp, "prepare", lambda cfg: None)  # the runs are done
    report = cmp.compare(2, tmp_path, ["trainer.epochs=2"])
    rows = report["arms"]
    assert rows["constant"]["R@1_mean"] == pytest.approx(89) and rows["replay"]["R@1_std"] == 0
    assert rows["autolr"]["passes_per_epoch"] == 1.5 and rows["constant"]["passes_per_epoch"] == 1
    assert rows["constant_reset"]["wall_s"] == pytest.approx(100.5)
    line = cmp.reading(rows)
    assert line.startswith("replay 89.00 is 5.00 points from autolr 84.00 and 0.00 from constant")
    assert line.endswith("closer to constant, pointing at the trial machinery")
    table = cmp.markdown(report | {"reading": line})
    assert "| autolr | 84.00 ± 0.00 | 100 | 1.50 | 84.00, 84.00 |" in table
