"""dml.studies.twin (scripts/check_synthetic.py) over finished runs: metrics worked out by
hand, through files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dml.studies import twin as check
from tests.conftest import compose_cfg

ROOT = Path(__file__).resolve().parents[2]

CURVES = {  # R@1 in points per epoch, seeds 0 and 1
    "constant": ([70, 80], [72, 78]),
    "step": ([75, 81], [79, 79]),
    "autolr": ([60, 70], [66, 70]),
    "freeze_lower": ([70, 78], [70, 77]),
    "freeze_upper": ([60, 70], [60, 72]),
    "freeze_stem_lower": ([60, 69], [60, 69]),
    "autolr_stem": ([60, 80], [60, 84]),
}
V0 = ([7, 6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6, 7])  # scores 1/49 and 1


def _write_runs(out: Path) -> None:
    for name, curves in CURVES.items():
        for seed, curve in enumerate(curves):
            res = {
                "status": "completed",
                "metrics": {"initial": {"R@1": 0.632}},
                "history": [{"epoch": e, "R@1": r / 100} for e, r in enumerate(curve)],
            }
            if name.startswith("autolr"):
                res["autolr"] = {
                    "trials": [{"variation": V0[seed]}],
                    "epochs": [{"lr": [seed + 1.0] * 7}],
                }
            (out / f"{name}_seed{seed}").mkdir(parents=True)
            (out / f"{name}_seed{seed}" / "results.json").write_text(json.dumps(res))


def test_plan_freezes_lower_or_upper_half_of_the_units():
    # Bug caught: halves off by one (unit 4 of 7 frozen in both) or of unequal size.
    runs = check.plan_runs(seeds=1, units=7, epochs=8)
    assert runs["freeze_lower_seed0"][1] == "trainer.freeze=[unit1,unit2,unit3]"
    assert runs["freeze_upper_seed0"][1] == "trainer.freeze=[unit5,unit6,unit7]"
    assert runs["freeze_stem_lower_seed0"][1] == "trainer.freeze=[stem,unit1,unit2,unit3]"
    assert runs["step_seed0"] == ["lr_policy=step", "lr_policy.drop_epoch=6", "seed=0"]
    assert runs["autolr_seed0"] == ["lr_policy=autolr", "autolr.drop_epoch=6", "seed=0"]
    assert runs["autolr_stem_seed0"][2] == "autolr.stem_factor=50"
    assert len(runs) == 7


def test_metrics_from_finished_runs(tmp_path):
    # Bugs caught: ratio against the wrong run, population instead of sample std, the gain
    # taken over the whole run, a failed target reported as met. Numbers by hand above.
    _write_runs(tmp_path / "runs")
    report_path = tmp_path / "check.json"
    argv = ["--seeds", "2", "--no-probe", "--json", str(report_path)]
    argv += ["--out", str(tmp_path / "runs")]
    assert check.main(argv) == 1  # v0_score and last_epoch_gain miss their targets
    report = json.loads(report_path.read_text())
    assert report["units"] == 7
    assert report["pooled_R@1"] == pytest.approx(63.2)
    assert report["transfer_ratio"] == pytest.approx(63.2 / 79)
    assert report["freeze_lower_cost"] == pytest.approx(79 - 77.5)
    assert report["freeze_upper_cost"] == pytest.approx(79 - 71)
    assert report["freeze_stem_lower_cost"] == pytest.approx(79 - 69)
    assert report["v0_score"] == pytest.approx((1 / 49 + 1) / 2)
    assert report["seed_std"] == pytest.approx({"constant": 2**0.5, "step": 2**0.5, "autolr": 0})
    assert report["last_epoch_gain"] == pytest.approx({"constant": 8, "step": 3, "autolr": 7})
    assert report["final_R@1"]["autolr"]["mean"] == pytest.approx(70)
    stem = report["autolr_stem_R@1"]
    assert (stem["mean"], stem["std"]) == pytest.approx((82, 8**0.5))
    assert stem["runs"] == pytest.approx([80, 84])
    assert report["autolr_final_lrs"] == [[1.0] * 7, [2.0] * 7]
    assert report["passed"] == {
        "transfer_ratio": True,
        "freeze_lower_cost": True,
        "v0_score": False,
        "seed_std": True,
        "last_epoch_gain": False,
        "freeze_lower_below_upper": True,
    }
    assert report["all_passed"] is False


def test_misspelt_override_is_one_line_and_runs_nothing(tmp_path):
    # Bug caught: a typo reaching the runs (18 failed subprocesses) or a Hydra traceback.
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "check_synthetic.py"),
            "--json",
            str(tmp_path / "c.json"),
            "--out",
            str(tmp_path / "runs"),
            "trainer.epoch=3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: bad override: Could not override 'trainer.epoch'."
    ]
    assert not list((tmp_path / "runs").iterdir()) and not (tmp_path / "c.json").exists()


def test_the_paper_scale_twin_is_the_cub_recipe_on_a_cub_sized_set():
    """Bug: --scale paper drifting from what it claims (another backbone, pruning, size or
    loss; the small source; the CPU twin's drops) or planning runs it does not need."""
    scale = check.SCALES["paper"]
    cfg = compose_cfg(["eval.selection=test", *scale.overrides])
    assert (cfg.model.arch, list(cfg.pruning.units), cfg.model.last_stride) == (
        "resnet50",
        [15, 16],
        1,
    )
    assert (cfg.dataset.image_size, cfg.loss.name, cfg.model.head) == (224, "softmax", "paper")
    assert (cfg.dataset.num_classes // 2, cfg.dataset.images_per_class) == (100, 59)
    assert (cfg.pretrain.num_classes, cfg.pretrain.images_per_class) == (48, 250)
    assert (cfg.model.pretrained, cfg.trainer.epochs, cfg.eval.selection) == (
        "synthetic",
        8,
        "test",
    )
    runs = check.plan_runs(1, units=14, epochs=10, scale=scale)
    assert sorted(runs) == sorted(
        f"{k}_seed0"
        for k in ("constant", "step", "autolr", "freeze_lower", "freeze_stem_lower", "freeze_upper")
    )
    assert runs["step_seed0"] == [
        "lr_policy=step",
        "lr_policy.drop_epoch=8",
        "lr_policy.gamma=0.5",
        "seed=0",
    ]
    assert runs["autolr_seed0"] == ["lr_policy=autolr", "autolr.drop_epoch=8", "seed=0"]
    assert (
        runs["freeze_stem_lower_seed0"][1]
        == "trainer.freeze=[stem," + ",".join(f"unit{k}" for k in range(1, 8)) + "]"
    )


def test_the_paper_scale_is_judged_by_the_premises_bounds():
    """Bug: the paper-scale twin judged by the CPU twin's targets, or a bound read wrongly
    (v0 spread 6-20x is a range: 5x and 25x both fail)."""
    scale = check.SCALES["paper"]
    metrics = {
        "transfer_ratio": 0.7,
        "freeze_stem_lower_cost": 1.0,
        "freeze_upper_cost": 4.0,
        "v0_spread": 12.0,
        "freeze_lower_cost": 9.0,  # not a paper-scale target
    }
    assert check.verdicts(metrics, scale) == dict.fromkeys(
        ("transfer_ratio", "freeze_stem_lower_cost", "freeze_upper_cost", "v0_spread"), True
    )
    for spread in (5.0, 25.0):
        assert check.verdicts({**metrics, "v0_spread": spread}, scale)["v0_spread"] is False
