"""lr_policy=replay: a finished run's per-group, per-epoch LRs, replayed as a plain loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dml.run import run
from tests.conftest import TINY_OVERRIDES, compose_cfg

GROUPS = ["stem", *(f"unit{k}" for k in range(1, 8)), "head", "loss"]  # resnet18, last1, proxies


def _run(tmp_path: Path, name: str, *overrides: str) -> tuple[int, dict]:
    cfg = compose_cfg([*TINY_OVERRIDES, f"data_dir={tmp_path / 'data'}", *overrides])
    code = run(cfg, tmp_path / name)
    return code, json.loads((tmp_path / name / "results.json").read_text())


def test_an_autolr_runs_lrs_are_replayed_group_by_group_without_reruns(tmp_path):
    """Bug: replay setting other LRs than the source run had (a group shifted by one, the
    epoch before's row, the drop missed), or re-running epochs as the source did."""
    code, source = _run(
        tmp_path,
        "autolr",
        "lr_policy=autolr",
        "trainer.epochs=3",
        "autolr.alpha=0.5",
        "autolr.beta=1.0",
        "autolr.drop_epoch=2",
    )
    assert code == 0 and list(source["history"][0]["lr"]) == GROUPS
    lrs = [row["lr"] for row in source["history"]]
    assert lrs[0] != lrs[1] or lrs[1] != lrs[2]  # the profile moves: a real check
    code, replayed = _run(
        tmp_path,
        "replay",
        "lr_policy=replay",
        f"lr_policy.run={tmp_path / 'autolr'}",
        "trainer.epochs=3",
    )
    assert code == 0
    assert [row["lr"] for row in replayed["history"]] == lrs
    assert [row["trials"] for row in replayed["history"]] == [1, 1, 1]
    assert replayed["replay"] == {"run": str(tmp_path / "autolr")}


def test_hand_written_lrs_are_set_for_their_epochs(tmp_path):
    """Bug: replay reading history rows out of order or setting a group another's LR; the LRs
    here differ per group and per epoch, so any mix-up shows."""
    source = tmp_path / "source"
    source.mkdir()
    rows = [{g: 1e-4 * (i + 1) + 1e-6 * k for k, g in enumerate(GROUPS)} for i in range(2)]
    history = [{"epoch": i, "lr": row} for i, row in enumerate(rows)]
    (source / "results.json").write_text(json.dumps({"status": "completed", "history": history}))
    code, replayed = _run(
        tmp_path, "replay", "lr_policy=replay", f"lr_policy.run={source}", "trainer.epochs=2"
    )
    assert code == 0
    for got, want in zip([r["lr"] for r in replayed["history"]], rows):
        assert list(got) == GROUPS
        assert [got[g] for g in GROUPS] == pytest.approx([want[g] for g in GROUPS], rel=1e-12)


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["lr_policy=replay"], "lr_policy=replay needs lr_policy.run=<run dir>"),
        (
            ["lr_policy=replay", "lr_policy.run=SOURCE", "pruning=none"],
            "its param groups ['stem', 'unit1', 'unit2', 'unit3', 'unit4', 'unit5', 'unit6', "
            "'unit7', 'head', 'loss'] differ from this run's ['stem', 'unit1', 'unit2', "
            "'unit3', 'unit4', 'unit5', 'unit6', 'unit7', 'unit8', 'head', 'loss']",
        ),
        (
            ["lr_policy=replay", "lr_policy.run=SOURCE", "trainer.epochs=3"],
            "recorded 1 epochs; this run trains 3 (trainer.epochs)",
        ),
        (["lr_policy=replay", "lr_policy.run=/nonexistent"], "run directory not found"),
    ],
)
def test_a_run_that_cannot_be_replayed_is_one_line(tmp_path, capsys, overrides, line):
    """Bug: replaying a run with other param groups (another backbone, pruning or loss) or
    fewer epochs, or a missing run, failing deep inside training instead of in one line."""
    source = tmp_path / "source"
    source.mkdir()
    history = [{"epoch": 0, "lr": dict.fromkeys(GROUPS, 1e-3)}]
    (source / "results.json").write_text(json.dumps({"status": "completed", "history": history}))
    overrides = [o.replace("SOURCE", str(source)) for o in overrides]
    code, saved = _run(tmp_path, "replay", *overrides)
    assert code == 1 and saved["status"] == "failed" and line in saved["error"]
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {saved['error']}"
