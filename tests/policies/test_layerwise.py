"""Per-layer baselines: llrd, gradual_unfreeze and autorgn, rules worked out by hand."""

from __future__ import annotations

import json

import pytest
import torch

from dml.errors import DmlError
from dml.policies import build_policy
from dml.policies.layerwise import layer_decay_factors, rgn_factors, unfrozen_mask
from dml.validation import check_config
from tests.conftest import TINY_OVERRIDES, compose_cfg, tiny_trainer
from tests.policies.sgd import GROUPS, INITIAL, sgd_moves, sgd_policy

LR = ["optimizer.lr=1e-3"]  # the backbone LR of sgd_policy's groups
KINDS = ["stem", "unit", "unit", "unit", "head", "loss"]


def test_layer_decay_factors():
    """Catches the decay counted from the bottom (unit 1 at 1) or the stem at unit 1's factor."""
    assert layer_decay_factors(KINDS, 0.5) == [0.125, 0.25, 0.5, 1.0, 1.0, 1.0]
    assert layer_decay_factors(KINDS, 1.0) == [1.0] * 6


def test_unfrozen_mask_opens_one_unit_below_every_few_epochs():
    """Catches unfreezing from the bottom, the stem before unit 1, or a frozen head."""
    mask = {e: unfrozen_mask(KINDS, e, every=2) for e in range(9)}
    assert mask[0] == mask[1] == [False, False, False, True, True, True]
    assert mask[2] == mask[3] == [False, False, True, True, True, True]
    assert mask[4] == mask[5] == [False, True, True, True, True, True]
    assert mask[6] == mask[8] == [True] * 6


def test_rgn_factors():
    """Catches ||w|| / ||g|| upside down, no normalisation by the largest, or a zero weight
    tensor dividing by zero."""
    assert rgn_factors([2.0, 1.0, 0.0], [1.0, 4.0, 1.0]) == [1.0, 0.125, 0.0]
    assert rgn_factors([1.0, 3.0], [0.0, 6.0]) == [0.0, 1.0]
    assert rgn_factors([0.0, 0.0], [1.0, 1.0]) == [1.0, 1.0]  # no gradient yet: plain LR


def test_llrd_profile_under_a_step_shape():
    """Catches llrd applied to the head (it keeps its ratio), or the shape not applied on top:
    stem 1e-3 * 0.5^2, unit1 * 0.5, unit2 * 1, head 1e-2; all x 0.1 from epoch 2."""
    policy, optimizer, params = sgd_policy(
        [
            *LR,
            "lr_policy=llrd",
            "lr_policy.decay=0.5",
            "lr_policy.shape=step",
            "lr_policy.drop_epoch=2",
        ]
    )
    before = sgd_moves(policy, optimizer, params, epoch=1, step=3)
    expected = {"stem": 2.5e-4, "unit1": 5e-4, "unit2": 1e-3, "head": 1e-2, "loss": 2e-2}
    assert before == pytest.approx(expected, rel=1e-5)
    after = sgd_moves(policy, optimizer, params, epoch=2, step=0)
    assert after == pytest.approx({k: v * 0.1 for k, v in expected.items()}, rel=1e-5)


def test_llrd_cosine_shape_ends_at_l_min():
    """Catches the cosine shape ignoring l_min or running one period per epoch."""
    policy, optimizer, params = sgd_policy(
        [
            *LR,
            "lr_policy=llrd",
            "lr_policy.decay=0.5",
            "lr_policy.shape=cosine",
            "lr_policy.l_min=0",
        ],
        epochs=4,
    )
    middle = sgd_moves(policy, optimizer, params, epoch=2, step=0)  # half way: 0.5 * l_max
    assert middle["unit2"] == pytest.approx(5e-4, rel=1e-5)
    assert middle["stem"] == pytest.approx(1.25e-4, rel=1e-5)


def test_gradual_unfreeze_moves_only_unfrozen_units(tmp_path):
    """Catches a frozen unit moving all the same (momentum or weight decay applied at LR 0)
    and a unit opened from the bottom: with every=1 over a 4-unit backbone, epoch 0 moves
    unit 4 and the head only, epoch 1 also unit 3, and the stem never within 2 epochs."""
    cfg = compose_cfg(["lr_policy=gradual_unfreeze", "lr_policy.every=1", "lr_policy.l_max=0.05"])
    trainer = tiny_trainer(build_policy(cfg), tmp_path, epochs=1)
    model = trainer.p.model
    parts = {"stem": model.backbone.stem, "head": model.head}
    parts.update({f"unit{k + 1}": u for k, u in enumerate(model.backbone.units)})

    def snapshot():
        return {n: [p.detach().clone() for p in m.parameters()] for n, m in parts.items()}

    def moved(a, b):
        return {n for n in parts if any(not torch.equal(x, y) for x, y in zip(a[n], b[n]))}

    start = snapshot()
    trainer.p.policy.begin_epoch(0)
    trainer.train_epoch(0, 0)
    after0 = snapshot()
    assert moved(start, after0) == {"unit4", "head"}
    trainer.p.policy.begin_epoch(1)
    # unit 3 opens now, without momentum gathered while it was frozen
    unit3 = trainer.p.optimizer.param_groups[3]
    assert all(p not in trainer.p.optimizer.state for p in unit3["params"])
    trainer.train_epoch(1, 0)
    assert moved(after0, snapshot()) == {"unit3", "unit4", "head"}


def test_autorgn_sets_each_unit_lr_from_its_gradient_and_weight_norms():
    """Catches RGN read before the backward pass (stale or missing gradients), the head
    scaled too, or no normalisation: stem ||g||/||w|| = 1/5, unit1 1/2, unit2 1/4; largest
    1/2, so stem x 0.4, unit1 x 1, unit2 x 0.5 of 1e-3; head and loss keep theirs."""
    policy, optimizer, params = sgd_policy([*LR, "lr_policy=autorgn"])
    weights = {"stem": [3.0, 4.0], "unit1": [2.0, 0.0], "unit2": [0.0, 4.0]}
    grads = {"stem": [0.0, 1.0], "unit1": [1.0, 0.0], "unit2": [1.0, 0.0]}
    for name, w in weights.items():
        params[name].data = torch.tensor(w)
        params[name].grad = torch.tensor(grads[name])
    for name in ("head", "loss"):
        params[name].grad = torch.ones(1)
    policy.step(0, 1)
    policy.before_update(0, 1)
    lrs = policy.current_lrs()
    expected = {"stem": 4e-4, "unit1": 1e-3, "unit2": 5e-4, "head": 1e-2, "loss": 2e-2}
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert set(lrs) == {g.name for g in GROUPS} and INITIAL["head"] == 1e-2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr_policy.decay=1.5", "lr_policy.decay=1.5 is out of range: expected 0 < decay <= 1"),
        ("lr_policy.shape=linear", "lr_policy.shape=linear is out of range: expected constant"),
    ],
)
def test_bad_llrd_values_are_one_line_errors(override, message):
    """Catches a decay above 1 (LRs growing downwards) or an unknown shape accepted."""
    with pytest.raises(DmlError, match=message.replace("(", r"\(")):
        check_config(compose_cfg(["lr_policy=llrd", override]))


def _expected_lrs(policy: str, units: int) -> dict[str, float]:
    """Epoch 0's stem / unit LRs worked out by hand at l_max 3e-3 (the twin's SGD)."""
    names = ["stem", *(f"unit{k}" for k in range(1, units + 1))]
    if policy == "llrd":  # decay 0.5: unit k at 0.5^(K-k), the stem at 0.5^K
        return {n: 3e-3 * 0.5 ** (units - i) for i, n in enumerate(names)}
    # gradual_unfreeze, every 1: only the top unit trains in epoch 0
    return {n: (3e-3 if n == f"unit{units}" else 0.0) for n in names}


@pytest.mark.parametrize(("model", "units"), [("resnet18", 7), ("vit_tiny", 6)])
@pytest.mark.parametrize("loss", ["proxy_anchor", "triplet", "softmax"])
def test_every_layerwise_policy_trains_with_every_loss_and_backbone(
    tmp_path, tmp_path_factory, loss, model, units
):
    """Catches a per-layer policy that assumes a ResNet's units (vit_tiny has 6 blocks and a
    final LayerNorm in the head group) or a loss with or without parameters: each policy
    runs a whole train.py job to completion and logs its own LR profile, not another's."""
    from dml.run import run

    for policy in ("llrd", "gradual_unfreeze", "autorgn"):
        run_dir = tmp_path / policy
        data = tmp_path_factory.getbasetemp() / "layerwise-data"  # generated once, shared
        overrides = [*TINY_OVERRIDES, f"data_dir={data}", f"model={model}"]
        overrides += [f"loss={loss}", f"lr_policy={policy}", "trainer.max_steps_per_epoch=2"]
        cfg = compose_cfg([*overrides, "lr_policy.decay=0.5"] if policy == "llrd" else overrides)
        assert run(cfg, run_dir) == 0
        saved = json.loads((run_dir / "results.json").read_text())
        assert saved["status"] == "completed"
        lrs = saved["history"][0]["lr"]
        backbone = {n: v for n, v in lrs.items() if n not in ("head", "loss")}
        if policy == "autorgn":  # the unit of largest ||g|| / ||w|| at l_max, the rest below
            assert len(backbone) == units + 1
            assert max(backbone.values()) == pytest.approx(3e-3)
            assert all(0 < v <= 3e-3 * (1 + 1e-9) for v in backbone.values())
        else:
            assert backbone == pytest.approx(_expected_lrs(policy, units))
