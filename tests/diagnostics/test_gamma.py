"""The γ ratio (supplement Table 1): two passes of one epoch from one snapshot."""

from __future__ import annotations

import pytest

from dml.diagnostics.gamma import TwoPassProbe, gamma, gamma_table, measure_gamma
from dml.run import build_parts
from tests.conftest import TINY_OVERRIDES, compose_cfg

# main-path conv weights of ResNet-18's blocks 1-7 (conv1 + conv2, 3x3), worked out by hand:
# 64x64x9 = 36,864; 128x64x9 = 73,728; 128x128x9 = 147,456; 256x128x9 = 294,912;
# 256x256x9 = 589,824; 512x256x9 = 1,179,648; 512x512x9 = 2,359,296
MAIN_PATH = [73_728, 73_728, 221_184, 294_912, 884_736, 1_179_648, 3_538_944]


@pytest.fixture
def cfg(tmp_path):
    return compose_cfg([*TINY_OVERRIDES, f"data_dir={tmp_path / 'data'}", "trainer.epochs=1"])


def test_accumulated_steps_add_up_to_the_weight_change(cfg):
    """Bug: a step's direction divided by another group's LR, steps missed by the hooks, or the
    norm taken over other weights than the variation's. Independent check: Eq. 5 says
    ‖∇L_acc‖ · η = ‖W_end - W_start‖ = v · n_k, with n_k counted by hand."""
    with build_parts(cfg) as parts:
        units = measure_gamma(parts, cfg.autolr, cfg.optimizer.lr, progress=False)
    assert [u["unit"] for u in units] == list(range(1, 8))
    for u, n in zip(units, MAIN_PATH):
        assert u["eta"] == pytest.approx(3e-3)  # the twin's single LR (optimizer=sgd_twin)
        assert u["grad_norm"] * u["eta"] == pytest.approx(u["variation"] * n, rel=1e-6)
        assert u["grad_norm_tilde"] * u["eta_tilde"] == pytest.approx(
            u["variation_tilde"] * n, rel=1e-6
        )
        assert u["gamma"] == pytest.approx(u["grad_norm_tilde"] / u["grad_norm"])
    assert any(u["eta_tilde"] != u["eta"] for u in units)  # Eq. 16 changed the LRs


def test_same_lrs_twice_give_gamma_exactly_one(cfg, monkeypatch):
    """Bug: the second pass not replaying the first one's batches, augmentations, dropout or
    momentum (or not starting from the snapshot): with the update switched off both passes
    must move every unit by exactly the same accumulated gradient."""
    monkeypatch.setattr(TwoPassProbe, "update", lambda self, epoch, v, active: None)
    with build_parts(cfg) as parts:
        units = measure_gamma(parts, cfg.autolr, cfg.optimizer.lr, progress=False)
    assert [u["eta_tilde"] for u in units] == [u["eta"] for u in units]
    assert [u["gamma"] for u in units] == [1.0] * 7


def test_gamma_and_table_from_hand_numbers():
    """Bug: γ inverted (‖∇L(w)‖ / ‖∇L(w̃)‖), η printed without its ×10⁻³ scale, or the
    paper's row missing beside ours."""
    assert gamma(50.0, 62.5) == 0.8
    assert gamma(1.0, 0.0) != gamma(1.0, 0.0)  # NaN for a unit that did not move
    units = [
        {"unit": 1, "eta": 1e-3, "eta_tilde": 1.6e-4, "grad_norm": 66.04, "grad_norm_tilde": 62.41}
        | {"gamma": 0.945},
    ]
    lines = gamma_table(units).splitlines()
    assert lines[0] == "| Unit | 1 |"
    assert "| η (×10⁻³) | 1.00 |" in lines and "| η̃ (×10⁻³) | 0.16 |" in lines
    assert "| ‖∇L_acc(w̃)‖ | 62.41 |" in lines and "| γ | 0.94 |" in lines  # 0.945 -> 0.94
    paper_gamma = [ln for ln in lines if ln.startswith("| γ |")][1]
    assert paper_gamma.split(" | ")[1:3] == ["0.95", "0.91"]  # Table 1, layers 1 and 2
