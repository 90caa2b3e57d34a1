"""dml.studies.layerwise (scripts/compare_layerwise.py): each method's overrides, the decay
choice, summaries by hand."""

from __future__ import annotations

import pytest
from PIL import Image

from dml.studies import layerwise as compare
from dml.validation import check_config
from tests.conftest import compose_cfg


def test_every_method_composes_to_its_policy_with_the_drop_at_three_quarters():
    """Bug: a misspelt key (Hydra would refuse it only when the 40-run sweep reaches it), a
    baseline left without the LR drop that step and AutoLR get, or the wrong mode run."""
    expected = {
        "constant": ("constant", None),
        "step": ("step", 8),
        "llrd": ("llrd", 8),
        "gradual_unfreeze": ("gradual_unfreeze", 8),
        "autorgn": ("autorgn", 8),
    }
    for method in compare.METHODS:
        for backbone in compare.BACKBONES:
            cfg = compose_cfg([*compare.method_overrides(method, 10, 0.65), f"model={backbone}"])
            check_config(cfg)
            if method in expected:
                name, drop = expected[method]
                assert cfg.lr_policy.name == name
                if drop is not None:
                    assert cfg.lr_policy.drop_epoch == drop
            else:
                assert cfg.lr_policy.name == "autolr"
                assert (cfg.autolr.drop_epoch, cfg.autolr.mode) == (8, method.split("_")[1])
            if method in compare.LAYERWISE:
                assert (cfg.lr_policy.shape, cfg.lr_policy.gamma) == ("step", 0.1)
    assert compose_cfg(compare.method_overrides("llrd", 10, 0.65)).lr_policy.decay == 0.65


def test_drop_epoch_by_hand():
    """Bug: a drop at epoch 0 (the whole run at the low LR) for short runs."""
    assert [compare.drop_epoch(e) for e in (1, 2, 4, 10, 40)] == [1, 2, 3, 8, 30]


def test_llrd_without_a_decay_and_an_unknown_method_are_refused():
    """Bug: llrd silently run at its YAML default decay instead of the chosen one."""
    with pytest.raises(ValueError, match="llrd needs a decay"):
        compare.method_overrides("llrd", 10)
    with pytest.raises(ValueError, match="unknown method 'sgd'"):
        compare.method_overrides("sgd", 10)


def test_the_decay_of_best_val_wins_and_ties_go_to_the_first():
    """Bug: choosing on the lowest score, on the last tie, or by dictionary key."""
    assert compare.choose_decay({0.5: 40.0, 0.65: 42.5, 0.8: 42.5}) == 0.65
    assert compare.choose_decay({0.8: 30.0, 0.5: 31.0}) == 0.5


def _run(r1: float, wall: float, passes: float, agreement: float | None) -> dict:
    return {"R@1": r1, "wall_s": wall, "passes_per_epoch": passes, "agreement": agreement}


def test_summary_by_hand():
    """Bug: population std instead of sample std, or agreement averaged over missing values."""
    runs = [_run(80.0, 100.0, 1.4, 1.0), _run(82.0, 110.0, 1.2, 0.5), _run(84.0, 120.0, 1.0, None)]
    got = compare.summarise(runs)
    # std: deviations -2, 0, 2 -> (4 + 0 + 4) / (3 - 1) = 4 -> 2
    assert got["R@1_mean"] == pytest.approx(82.0)
    assert got["R@1_std"] == pytest.approx(2.0)
    assert got["wall_s"] == pytest.approx(110.0)
    assert got["passes_per_epoch"] == pytest.approx(1.2)
    assert got["agreement"] == pytest.approx(0.75)
    assert compare.summarise([_run(70.0, 50.0, 1.0, None)])["agreement"] is None


def _report() -> dict:
    methods = {
        "constant": compare.summarise([_run(80.0, 100.0, 1.0, None), _run(82.0, 110.0, 1.0, None)]),
        "llrd": compare.summarise([_run(81.0, 90.0, 1.0, None)]),
        "autolr_probe": compare.summarise([_run(78.0, 120.0, 1.05, 1.0)]),
    }
    backbone = {"epochs": 10, "decay": 0.65, "decay_val_R@1": {0.5: 40.0, 0.65: 42.5}}
    return {"seeds": 2, "twin": [], "backbones": {"resnet18": {**backbone, "methods": methods}}}


def test_markdown_rows_carry_each_methods_numbers():
    """Bug: a row showing another method's figures, or llrd without the decay it ran with."""
    lines = compare.markdown(_report()).splitlines()
    assert lines[2] == "| resnet18 | constant | 81.00 ± 1.41 | 105 | 1.00 | — |"
    assert lines[3] == "| resnet18 | llrd (decay 0.65) | 81.00 ± 0.00 | 90 | 1.00 | — |"
    assert lines[4] == "| resnet18 | autolr_probe | 78.00 ± 0.00 | 120 | 1.05 | 100% |"
    assert lines[-1] == "llrd decay on resnet18 (seed 0 val R@1): 0.5: 40.00, 0.65: 42.50"


def test_the_figure_is_a_png_with_one_marker_per_method(tmp_path):
    """Bug: a figure that is written but empty, or not one panel per backbone."""
    out = compare.plot(_report(), tmp_path / "compare.png")
    image = Image.open(out).convert("RGB")
    assert image.size == (660, 576)  # one 5.5 x 4.8 inch panel (one backbone) at 120 dpi
    colours = set(image.getdata())
    # C0 (constant), C2 (llrd) and C6 (autolr_probe) of matplotlib's cycle are drawn
    for rgb in ((31, 119, 180), (44, 160, 44), (227, 119, 194)):
        assert rgb in colours
