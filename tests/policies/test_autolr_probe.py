"""autolr.mode=probe: every trial is checked early and cut there when it will not sort."""

from __future__ import annotations

import pytest
import torch

import dml.policies.autolr as autolr_module
from dml.errors import DmlError
from dml.policies.autolr import AutoLRPolicy
from dml.validation import check_config
from tests.conftest import autolr_cfg, compose_cfg, tiny_trainer


def count_steps(trainer) -> list[int]:
    """Steps run per trial, counted by the optimizer's step calls."""
    counts: list[int] = []
    begin, step = trainer.p.policy.begin_epoch, trainer.p.optimizer.step

    def on_begin(epoch):
        counts.append(0)
        begin(epoch)

    def on_step(*args, **kwargs):
        counts[-1] += 1
        return step(*args, **kwargs)

    trainer.p.policy.begin_epoch = on_begin
    trainer.p.optimizer.step = on_step
    return counts


def record_variations(monkeypatch) -> list[list[float]]:
    """Every weight-variation vector the controller computes, in order."""
    seen: list[list[float]] = []
    real = autolr_module.weight_variation

    def spy(backbone, start):
        v = real(backbone, start)
        seen.append(list(v))
        return v

    monkeypatch.setattr(autolr_module, "weight_variation", spy)
    return seen


def test_sorted_trials_run_whole_and_match_rerun_bit_for_bit(tmp_path):
    """Catches a check that cuts a trial which sorts, or that disturbs the run (an extra
    RNG draw, another batch order): with threshold 0 every trial sorts, so probe mode must
    run 4 of 4 steps per epoch (1.0 pass) and end with rerun mode's weights exactly."""
    runs, steps = {}, {}
    for mode in ("rerun", "probe"):
        policy = AutoLRPolicy(autolr_cfg(threshold=0.0, mode=mode, probe_fraction=0.5), 0.05)
        trainer = tiny_trainer(policy, tmp_path / mode, epochs=2)
        steps[mode] = count_steps(trainer)
        trainer.fit()
        runs[mode] = (trainer.p.model.state_dict(), policy)
    assert steps["probe"] == steps["rerun"] == [4, 4]
    policy = runs["probe"][1]
    assert [r["passes"] for r in policy.epochs_log] == [1.0, 1.0]
    assert [t["kind"] for t in policy.trials_log] == ["full", "full"]
    for key, value in runs["rerun"][0].items():
        assert torch.equal(value, runs["probe"][0][key]), key


def test_unsortable_trials_are_cut_at_the_check_step(tmp_path):
    """Catches cuts that run the whole epoch anyway, a cut that needs a rho not yet measured,
    or no cap on cuts. 4 steps per epoch, probe_fraction 0.25 -> checks after 1, 2, 3 steps.
    threshold 1.01 never sorts; max_trials 2. Epoch 0: the v0 trial is cut at step 1
    (linear extrapolation), trial 1 runs whole (no rho yet), trial 2 is cut at step 1,
    trial 3 whole (cuts capped) -> 1 + 4 + 1 + 4 = 10 steps = 2.5 passes. Epoch 1 (rho
    known): 2 cuts, 2 whole -> 1 + 1 + 4 + 4 = 10 steps = 2.5 passes."""
    cfg = autolr_cfg(
        threshold=1.01, threshold_floor=1.01, max_trials=2, mode="probe", probe_fraction=0.25
    )
    policy = AutoLRPolicy(cfg, 0.05)
    trainer = tiny_trainer(policy, tmp_path, epochs=2)
    steps = count_steps(trainer)
    with pytest.warns(UserWarning, match="max_trials=2"):
        trainer.fit()
    assert steps == [1, 4, 1, 4, 1, 1, 4, 4]
    kinds = [t["kind"] for t in policy.trials_log]
    assert kinds == ["cut", "full", "cut", "full", "cut", "cut", "full", "full"]
    assert [t["steps"] for t in policy.trials_log] == steps
    assert [r["passes"] for r in policy.epochs_log] == [2.5, 2.5]
    # a capped epoch keeps the best whole trial, never a cut one
    assert policy.epochs_log[0]["accepted_trial"] in (1, 3)
    assert policy.epochs_log[0]["trials"] == 4


def test_cut_extrapolates_with_rho_and_updates_lrs_by_eq16(tmp_path, monkeypatch):
    """Catches a wrong rho (inverted, or from another check step or trial), a cut scored on
    the raw check-scale variation, a v0 left on the linear guess, or an LR update that
    ignores the extrapolation. 4 steps, checks after 1, 2, 3. Epoch 0's v0 trial is cut
    at step 1 with v0 = 4 * c0 (linear); trial 1 runs whole, its check at step 1 (c1) and
    whole epoch (v1) give rho = v1 / c1, and v0 becomes rho * c0; trial 2's check c2
    becomes v_hat = rho * c2, and trial 3's LRs are trial 2's times target / v_hat."""
    seen = record_variations(monkeypatch)
    cfg = autolr_cfg(threshold=1.01, max_trials=2, mode="probe", probe_fraction=0.25)
    policy = AutoLRPolicy(cfg, 0.05)
    trainer = tiny_trainer(policy, tmp_path, epochs=1)
    with pytest.warns(UserWarning):
        trainer.fit()
    c0, c1, v1, c2 = seen[0], seen[1], seen[4], seen[5]
    log = policy.trials_log
    assert [t["kind"] for t in log] == ["cut", "full", "cut", "full"]
    assert log[0]["variation"] == pytest.approx([4 * c for c in c0], rel=1e-12)
    assert log[1]["variation"] == pytest.approx(v1, rel=1e-12)
    rho = [a / b for a, b in zip(v1, c1)]
    assert all(r > 1.5 for r in rho)  # 4 steps move every unit further than 1 step
    assert policy.state.v0 == pytest.approx([r * c for r, c in zip(rho, c0)], rel=1e-12)
    assert log[2]["variation"] == pytest.approx([r * c for r, c in zip(rho, c2)], rel=1e-12)
    # alpha = beta = 1: epoch 0's targets are the line from min(v0) to max(v0)
    lo, hi = min(policy.state.v0), max(policy.state.v0)
    assert log[2]["target"] == pytest.approx([lo + i * (hi - lo) / 3 for i in range(4)])
    v_hat, t = log[2]["variation"], log[2]["target"]
    expected = [lr * tk / vk for lr, tk, vk in zip(log[2]["lr"], t, v_hat)]
    assert log[3]["lr"] == pytest.approx(expected, rel=1e-12)


def scripted_variations(monkeypatch, script: list[list[float]]) -> None:
    """weight_variation returns the script's vectors in call order."""
    calls = iter(script)
    monkeypatch.setattr(autolr_module, "weight_variation", lambda backbone, start: next(calls))


def test_a_check_that_let_a_failing_trial_through_no_longer_cuts(tmp_path, monkeypatch):
    """Catches an early check that keeps cutting after a later one proved it wrong (on the
    32 px twin the two alternated, 5 cuts in one epoch). 4 steps, checks after 1, 2, 3;
    epoch 0 sorts everywhere with variation proportional to steps (rho(s) = 4 / s).
    Epoch 1: trial 0 passes at step 1 and is cut at step 2; trial 1 is reversed at step 1
    (ignored now), sorted from step 2 on and accepted: 2 + 4 steps. Epoch 2: trial 0
    passes every check but fails whole; trial 1 is reversed at step 1 and still runs
    whole (the checks missed once), and is accepted: 4 + 4 steps."""
    up, down = [1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]
    sorted_trial = [[s * x for x in up] for s in (1, 2, 3, 4)]
    script = [
        *sorted_trial,  # epoch 0
        up,
        [2 * x for x in down],  # epoch 1, trial 0: cut at step 2
        down,
        *sorted_trial[1:],  # trial 1
        *sorted_trial[:3],
        [4 * x for x in down],  # epoch 2, trial 0: fails whole
        down,
        *sorted_trial[1:],  # trial 1
    ]
    scripted_variations(monkeypatch, script)
    cfg = autolr_cfg(threshold=0.9, threshold_floor=0.9, mode="probe", probe_fraction=0.25)
    policy = AutoLRPolicy(cfg, 0.05)
    trainer = tiny_trainer(policy, tmp_path, epochs=3)
    steps = count_steps(trainer)
    trainer.fit()
    assert steps == [4, 2, 4, 4, 4]
    assert [t["kind"] for t in policy.trials_log] == ["full", "cut", "full", "full", "full"]
    assert [r["passes"] for r in policy.epochs_log] == [1.0, 1.5, 2.0]


def test_rho_survives_a_checkpoint(tmp_path):
    """Catches a resumed probe run that forgets rho (its first trial would then run whole
    instead of being checked): rho is part of the policy's state_dict."""
    policy = AutoLRPolicy(autolr_cfg(threshold=0.0, mode="probe", probe_fraction=0.5), 0.05)
    tiny_trainer(policy, tmp_path, epochs=1).fit()
    fresh = AutoLRPolicy(autolr_cfg(threshold=0.0, mode="probe", probe_fraction=0.5), 0.05)
    fresh.load_state_dict(torch.load(_saved(policy.state_dict(), tmp_path), weights_only=False))
    assert fresh.state.rho == policy.state.rho and policy.state.rho is not None


def _saved(state: dict, tmp_path) -> str:
    path = tmp_path / "policy.pt"
    torch.save(state, path)
    return str(path)


def test_rerun_mode_logs_one_pass_per_trial(tmp_path):
    """Catches the passes count of the default mode drifting from its trial count."""
    policy = AutoLRPolicy(autolr_cfg(threshold=1.01, max_trials=3), 0.05)
    trainer = tiny_trainer(policy, tmp_path)
    with pytest.warns(UserWarning):
        trainer.fit()
    record = policy.epochs_log[0]
    assert record["passes"] == 3.0 and record["mode"] == "rerun"
    assert {t["kind"] for t in policy.trials_log} == {"full"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("autolr.mode=online2", "autolr.mode=online2"),
        ("autolr.probe_fraction=0", "autolr.probe_fraction=0"),
        ("autolr.probe_fraction=1.5", "autolr.probe_fraction=1.5"),
    ],
)
def test_bad_mode_keys_are_refused_in_one_line(override, message):
    """Catches a typo'd mode silently running the paper's re-runs, or a probe of 0 steps."""
    cfg = compose_cfg([override])
    with pytest.raises(DmlError, match=message) as err:
        check_config(cfg)
    assert "\n" not in str(err.value)


def test_online_mode_runs_one_pass_and_updates_lrs_mid_epoch(tmp_path, monkeypatch):
    """Catches an online mode that re-runs (more than 4 steps), never changes the LRs
    within the epoch, or extrapolates wrongly. 4 steps, probe_fraction 0.25: checks after
    steps 1, 2, 3. The first check's variation x 4 / 1 is v0 (alpha = beta = 1 targets);
    threshold 1.01 never sorts, so each check applies Eq. 16: lr * target / v_hat."""
    seen = record_variations(monkeypatch)
    cfg = autolr_cfg(threshold=1.01, mode="online", probe_fraction=0.25)
    policy = AutoLRPolicy(cfg, 0.05)
    trainer = tiny_trainer(policy, tmp_path, epochs=1)
    steps = count_steps(trainer)
    trainer.fit()
    assert steps == [4]
    log = policy.trials_log
    assert [t["kind"] for t in log] == ["window", "window", "window", "full"]
    assert [t["steps"] for t in log] == [1, 2, 3, 4]
    assert log[0]["variation"] == pytest.approx([4 * x for x in seen[0]], rel=1e-12)
    assert log[1]["variation"] == pytest.approx([2 * x for x in seen[1]], rel=1e-12)
    assert policy.state.v0 == log[0]["variation"]
    # the LRs logged at the second check are the first check's Eq. 16 update
    t, v_hat = log[1]["target"], log[0]["variation"]
    expected = [0.05 * tk / vk for tk, vk in zip(t, v_hat)]
    assert log[1]["lr"] == pytest.approx(expected, rel=1e-12)
    assert log[1]["lr"] != log[0]["lr"]
    record = policy.epochs_log[0]
    assert record["passes"] == 1.0 and record["trials"] == 1 and not record["capped"]
    assert record["variation"] == pytest.approx(seen[3], rel=1e-12)
