"""TensorBoard: the custom-scalars layout draws every AutoLR quantity as one chart over units."""

from __future__ import annotations

import re

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2

from dml.logging.tensorboard import ScalarLogger
from dml.policies import build_policy
from tests.conftest import compose_cfg, tiny_trainer


def _logging_autolr_trainer(tmp_path):
    """A 2-epoch AutoLR tiny trainer whose epoch 0 is re-run, logging to tmp_path/tb."""
    cfg = compose_cfg(["lr_policy=autolr", "autolr.threshold=1.01", "autolr.max_trials=2"])
    cfg.autolr.alpha, cfg.autolr.beta = 0.5, 1.0  # feasible on the tiny model
    trainer = tiny_trainer(build_policy(cfg), tmp_path, epochs=2)
    logger = ScalarLogger(tmp_path, enabled=True)
    trainer.logger = logger
    trainer.p.policy.ctx.log_scalar = logger.scalar
    return trainer, logger


def _layout_and_tags(run_dir):
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"tensors": 0})
    events.Reload()
    layout = layout_pb2.Layout()
    tensor = events.Tensors("custom_scalars__config__")[0].tensor_proto
    layout.ParseFromString(tensor.string_val[0])
    return layout, set(events.Tags()["scalars"])


def test_layout_charts_match_the_tags_an_autolr_run_logs(tmp_path):
    """Catches a renamed AutoLR tag leaving its multi-line chart empty, or one chart per unit."""
    trainer, logger = _logging_autolr_trainer(tmp_path)
    trainer.fit()
    logger.close()
    layout, tags = _layout_and_tags(tmp_path)
    charts = {
        (cat.title, chart.title): list(chart.multiline.tag)
        for cat in layout.category
        for chart in cat.chart
    }
    units = [f"unit{k}" for k in range(1, 5)]
    per_unit = {
        ("AutoLR per epoch", "LR of every group"): [f"lr/{u}" for u in units],
        ("AutoLR per epoch", "weight variation (x1e-6) per unit"): [
            f"autolr/variation_x1e6/{u}" for u in units
        ],
        ("AutoLR per trial", "LR per unit"): [f"autolr_trial/lr/{u}" for u in units],
        ("AutoLR per trial", "target variation (x1e-6) per unit"): [
            f"autolr_trial/target_x1e6/{u}" for u in units
        ],
    }
    for chart, expected in per_unit.items():
        patterns = charts[chart]
        matched = {t for t in tags if any(re.fullmatch(p, t) for p in patterns)}
        assert set(expected) <= matched, (chart, sorted(matched))
    # the per-unit tags are gathered in one chart each, not spread over several
    assert len(charts[("AutoLR per epoch", "LR of every group")]) == 1


def test_event_files_hold_the_logged_values(tmp_path):
    """Catches scalars logged at the wrong step or with the wrong value (e.g. the LR before
    the epoch's update, or the loss of another trial): read back from the event files, the
    per-epoch LR and trial count and the AutoLR scores equal what the run recorded."""
    trainer, logger = _logging_autolr_trainer(tmp_path)
    trainer.log_every = 1
    history = trainer.fit()
    logger.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()

    def series(tag):
        return [(e.step, e.value) for e in events.Scalars(tag)]

    assert series("lr/unit3") == [
        (h["epoch"], pytest.approx(h["lr"]["unit3"], rel=1e-6)) for h in history
    ]
    assert series("autolr/trials") == [(h["epoch"], float(h["trials"])) for h in history]
    assert history[0]["trials"] == 2  # threshold 1.01 rejects epoch 0's first trial
    trials = trainer.p.policy.trials_log
    assert series("autolr_trial/score") == [
        (i, pytest.approx(t["score"], rel=1e-6)) for i, t in enumerate(trials)
    ]
    # 64 images / batch 16 = 4 steps a trial; every step of every trial is logged
    steps = 4 * sum(h["trials"] for h in history)
    assert [step for step, _ in series("train/loss")] == list(range(steps))
