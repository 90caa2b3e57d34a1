"""dml.studies.premise: the premise metrics by hand, v0 as AutoLR measures it, the verdict."""

from __future__ import annotations

import json

import pytest

from dml.run import run
from dml.studies import premise
from tests.conftest import TINY_OVERRIDES, compose_cfg


def test_first_update_factors_by_hand():
    """Bug: the factors taken as v / t instead of t / v, or against the wrong end of the line
    (alpha scales the smallest variation, beta the largest, whatever unit holds them)."""
    # v0 falls 8 -> 1: lower 2 x 1 = 2, upper 0.4 x 8 = 3.2, targets 2, 2.4, 2.8, 3.2
    assert premise.first_update([8, 4, 2, 1], 2.0, 0.4) == {
        "unit1": pytest.approx(2 / 8),
        "top": pytest.approx(3.2 / 1),
        "feasible": True,
    }
    # lower 2 x 1 = 2 >= upper 0.1 x 8 = 0.8: no line
    assert premise.first_update([8, 4, 2, 1], 2.0, 0.1)["feasible"] is False


def test_metrics_and_verdict_by_hand():
    """Bug: a cost taken as frozen minus single (the sign), seeds not averaged, the spread over
    the first seed only, or a verdict that misses a failed bound."""
    finals = {
        "constant": [80.0, 82.0],
        "freeze_lower": [79.0, 80.0],
        "freeze_stem_lower": [80.0, 81.0],
        "freeze_upper": [75.0, 76.0],
    }
    v0s = [[12.0, 6.0, 3.0, 1.0], [12.0, 6.0, 3.0, 2.0]]  # unit means 12, 6, 3, 1.5
    m = premise.premise_metrics(finals, pooled=60.0, v0s=v0s, alpha=2.0, beta=0.4)
    assert m["single_lr_R@1"] == 81.0 and m["transfer_ratio"] == pytest.approx(60 / 81)
    assert (m["freeze_lower_cost"], m["freeze_stem_lower_cost"]) == (1.5, 0.5)
    assert m["freeze_upper_cost"] == 5.5
    assert m["v0"] == [12.0, 6.0, 3.0, 1.5] and m["v0_spread"] == 8.0
    # lower 2 x 1.5 = 3, upper 0.4 x 12 = 4.8: unit 1 x 3/12, unit 4 x 4.8/1.5
    assert m["first_update"]["unit1"] == pytest.approx(0.25)
    assert m["first_update"]["top"] == pytest.approx(3.2)
    judged = premise.verdict(m, units=4)
    assert judged["holds"] is True and judged["line"].startswith("premise holds: ")
    m["freeze_stem_lower_cost"], m["v0_spread"] = 5.6, 28.0
    judged = premise.verdict(m, units=4)
    assert judged["passed"] == {
        "transfer_ratio": True,
        "freeze_stem_lower_cost": False,
        "freeze_upper_cost": True,
        "v0_spread": False,
    }
    assert judged["line"] == (
        "premise does not hold: the low layers still need to learn: freezing the stem and "
        "units 1-2 costs 5.6 points (> 1.5), and AutoLR slows them (its first update: unit 1 "
        "x0.25); one LR moves the units over a 28x range (outside 6-20x): its first update "
        "moves unit 1 x0.25 and unit 4 x3.2"
    )


def test_run_plan_freezes_each_half_and_the_stem():
    """Bug: halves off by one (unit 4 of 7 frozen twice) or the stem left out of its run."""
    runs = premise.run_plan(units=7, seeds=1, extra=["trainer.epochs=3"])
    assert runs["freeze_lower_seed0"][1] == "trainer.freeze=[unit1,unit2,unit3]"
    assert runs["freeze_stem_lower_seed0"][1] == "trainer.freeze=[stem,unit1,unit2,unit3]"
    assert runs["freeze_upper_seed0"][1] == "trainer.freeze=[unit5,unit6,unit7]"
    assert runs["constant_seed0"] == ["lr_policy=constant", "trainer.epochs=3", "seed=0"]


def test_v0_is_autolrs_first_trial(tmp_path):
    """Bug: v0 measured at other LRs than AutoLR's first trial (the stem at the unit LR, the
    head at optimizer.head_lr) or over another epoch than the one AutoLR scores first."""
    overrides = [*TINY_OVERRIDES, f"data_dir={tmp_path / 'data'}", "lr_policy=autolr"]
    overrides += ["autolr.alpha=0.5", "autolr.beta=1.0"]
    cfg = compose_cfg(overrides)
    assert run(cfg, tmp_path / "run") == 0
    trial0 = json.loads((tmp_path / "run" / "results.json").read_text())["autolr"]["trials"][0]
    v0 = premise.measure_v0(compose_cfg(overrides))
    assert v0 == pytest.approx(trial0["variation"], rel=1e-6) and len(v0) == 7


def test_the_command_reads_finished_runs_and_writes_the_verdict(tmp_path, capsys):
    """Bug: the JSON's costs or ratio computed from the wrong runs (a seed, the initial R@1
    of another run), or the verdict line missing from the console; finished runs in --out are
    reused, so the runs here are read, not trained, and v0 is measured for real."""
    out = tmp_path / "runs"
    finals = {"constant": 80, "freeze_lower": 79, "freeze_stem_lower": 77, "freeze_upper": 70}
    for kind, r1 in finals.items():
        run_dir = out / f"{kind}_seed0"
        run_dir.mkdir(parents=True)
        history = [{"epoch": 0, "R@1": 0.5}, {"epoch": 1, "R@1": r1 / 100}]
        initial = 0.6 if kind == "constant" else 0.1
        saved = {"status": "completed", "metrics": {"initial": {"R@1": initial}}}
        (run_dir / "results.json").write_text(json.dumps(saved | {"history": history}))
    report = tmp_path / "premise.json"
    tiny = [o for o in TINY_OVERRIDES if not o.startswith("eval.selection")]
    args = ["--json", str(report), "--epochs", "2", "--out", str(out)]
    assert premise.main([*args, *tiny, f"data_dir={tmp_path / 'data'}"]) == 0
    got = json.loads(report.read_text())
    assert (got["units"], got["pooled_R@1"], got["single_lr_R@1"]) == (7, 60.0, 80.0)
    assert got["transfer_ratio"] == pytest.approx(0.75)
    assert [got[f"{k}_cost"] for k in premise.FROZEN] == pytest.approx([1, 3, 10])
    assert len(got["v0"]) == 7 and got["v0_spread"] == max(got["v0"]) / min(got["v0"])
    assert got["holds"] is False and got["passed"]["freeze_stem_lower_cost"] is False
    assert capsys.readouterr().out.strip().splitlines()[-1] == got["verdict"]


def test_a_bad_override_is_one_line_and_runs_nothing(tmp_path, capsys):
    """Bug: a misspelt override reaching the user as a Hydra traceback after runs started."""
    code = premise.main(["--json", str(tmp_path / "p.json"), "trainer.epoch=3"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: ") and len(err.splitlines()) == 1
    assert "trainer.epoch" in err and not (tmp_path / "p.json").exists()
