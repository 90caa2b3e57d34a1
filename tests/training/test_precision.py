"""trainer.precision (autocast, GradScaler) and trainer.channels_last, on the CPU."""

from __future__ import annotations

import math

import pytest
import torch

from dml.errors import DmlError
from dml.policies import build_policy
from tests.conftest import compose_cfg, tiny_trainer


def _trainer(tmp_path, **options):
    policy = build_policy(compose_cfg(["lr_policy=constant"]))
    return tiny_trainer(policy, tmp_path, epochs=2, **options)


def _losses(trainer, trials: int = 2) -> list[float]:
    return [trainer.train_epoch(0, t) for t in range(trials)]


def test_bf16_runs_the_forward_pass_in_bf16(tmp_path):
    """Bug: trainer.precision=bf16 accepted but ignored (no autocast, so no speed-up), or
    autocast breaking the loss (NaN, inf)."""
    fp32 = _losses(_trainer(tmp_path / "fp32"))
    trainer = _trainer(tmp_path / "bf16", precision="bf16")
    seen = []
    trainer.p.model.backbone.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    bf16 = _losses(trainer)
    assert set(seen) == {torch.bfloat16}
    assert all(math.isfinite(x) for x in bf16)
    assert bf16 != fp32 and bf16 == pytest.approx(fp32, rel=0.05)


def test_fp32_runs_no_autocast(tmp_path):
    """Bug: the default precision autocasting anyway (numbers unlike every earlier run's)."""
    trainer = _trainer(tmp_path)
    seen = []
    trainer.p.model.backbone.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    _losses(trainer, trials=1)
    assert set(seen) == {torch.float32} and not trainer.scaler.is_enabled()


def test_fp16_scaler_state_survives_snapshot_restore_and_checkpoints(tmp_path):
    """Bug: an AutoLR re-run (or a resumed run) starting from the scale the rejected trial
    left, not the one its snapshot (checkpoint) was taken at."""
    trainer = _trainer(tmp_path / "a", precision="fp16")
    assert trainer.scaler.is_enabled()
    token = trainer.snapshot()
    assert token["scaler"] == {
        "scale": 65536.0,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 2000,
        "_growth_tracker": 0,
    }
    assert all(math.isfinite(x) for x in _losses(trainer, trials=1))
    trained = trainer.scaler.state_dict()
    assert trained != token["scaler"]  # 4 finite steps: the growth tracker moved
    trainer.restore(token)
    assert trainer.scaler.state_dict() == token["scaler"]
    _losses(trainer, trials=1)
    state = trainer.state_dict(epoch=0)
    assert state["scaler"] == trained  # the re-run from the snapshot: the same 4 steps
    fresh = _trainer(tmp_path / "b", precision="fp16")
    fresh.load_state_dict(state)
    assert fresh.scaler.state_dict() == trained


def test_fp16_scaler_backs_off_on_overflow(tmp_path):
    """Bug: the scaler built but its scale/step/update not used (an overflowing fp16 step
    would write inf into the weights instead of being skipped)."""
    trainer = _trainer(tmp_path, precision="fp16")
    trainer.scaler.load_state_dict({**trainer.scaler.state_dict(), "scale": 2.0**100})
    before = {k: v.clone() for k, v in trainer.p.model.state_dict().items() if "weight" in k}
    _losses(trainer, trials=1)
    assert trainer.scaler.get_scale() < 2.0**100
    after = trainer.p.model.state_dict()
    assert all(torch.isfinite(after[k]).all() for k in before)


def test_an_fp32_checkpoint_resumes_under_fp16(tmp_path):
    """Bug: a checkpoint without scaler state (an fp32 run's, or one written before the key
    existed) failing to load."""
    state = _trainer(tmp_path / "a").state_dict(epoch=0)
    assert state["scaler"] == {}
    del state["scaler"]
    fresh = _trainer(tmp_path / "b", precision="fp16")
    fresh.load_state_dict(state)
    assert fresh.scaler.get_scale() == 65536.0


def test_channels_last_trains_the_same_losses(tmp_path):
    """Bug: trainer.channels_last ignored (weights or batches left contiguous), or the
    layout changing what the model computes."""
    plain = _losses(_trainer(tmp_path / "plain"))
    trainer = _trainer(tmp_path / "cl", channels_last=True)
    layouts = []
    trainer.p.model.register_forward_pre_hook(
        lambda m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    conv = trainer.p.model.backbone.units[0].conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert _losses(trainer) == pytest.approx(plain, abs=1e-5)
    assert layouts and all(layouts)


def test_precision_without_autocast_on_the_device_is_one_line(tmp_path, monkeypatch):
    """Bug: a device without autocast failing deep inside torch with a traceback."""
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda device_type: False)
    with pytest.raises(DmlError) as err:
        _trainer(tmp_path, precision="fp16")
    assert str(err.value) == (
        "trainer.precision=fp16: this torch has no autocast on device cpu; "
        "use trainer.precision=fp32"
    )
