"""Out-of-range values fail at start-up in one line naming the key, the value and the range."""

# ruff: noqa: E501  (the expected lines are kept whole, as a user reads them)

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from dml.errors import DmlError
from dml.run import run
from dml.validation import RULES, check_config
from tests.conftest import TINY_OVERRIDES, compose_cfg

# (override, the exact line); each value is just outside the range of section 2 of issue 8
BAD = [
    ("trainer.epochs=0", "trainer.epochs=0 is out of range: expected an integer >= 1"),
    ("trainer.epochs=-1", "trainer.epochs=-1 is out of range: expected an integer >= 1"),
    ("trainer.batch_size=1", "trainer.batch_size=1 is out of range: expected an integer >= 2"),
    (
        "trainer.samples_per_class=1",
        "trainer.samples_per_class=1 is out of range: expected 0 or an integer >= 2",
    ),
    (
        "trainer.warmup_epochs=-1",
        "trainer.warmup_epochs=-1 is out of range: expected an integer >= 0",
    ),
    ("optimizer.lr=0", "optimizer.lr=0.0 is out of range: expected a number > 0"),
    ("optimizer.head_lr=-0.1", "optimizer.head_lr=-0.1 is out of range: expected a number > 0"),
    (
        "optimizer.weight_decay=-1e-4",
        "optimizer.weight_decay=-0.0001 is out of range: expected a number >= 0",
    ),
    ("optimizer.momentum=1", "optimizer.momentum=1.0 is out of range: expected a number in [0, 1)"),
    (
        "task=classification loss=proxy_anchor",
        "task=classification with loss=proxy_anchor: classification trains and scores a loss's classifier; expected loss=softmax",
    ),
    (
        "eval.val_images=1",
        "eval.val_images=1.0 is out of range: expected a share strictly between 0 and 1",
    ),
    ("autolr.alpha=-1", "autolr.alpha=-1.0 is out of range: expected a number > 0"),
    ("autolr.beta=0", "autolr.beta=0.0 is out of range: expected a number > 0"),
    ("autolr.threshold=2", "autolr.threshold=2.0 is out of range: expected a number in (0, 1]"),
    ("autolr.threshold=0", "autolr.threshold=0.0 is out of range: expected a number in (0, 1]"),
    (
        "autolr.threshold_decay=1.5",
        "autolr.threshold_decay=1.5 is out of range: expected a number in (0, 1]",
    ),
    (
        "autolr.threshold_floor=0.95",
        "autolr.threshold_floor=0.95 is above autolr.threshold=0.94: expected floor <= threshold",
    ),
    ("autolr.max_trials=0", "autolr.max_trials=0 is out of range: expected an integer >= 1"),
    ("autolr.lr_min=2", "autolr.lr_min=2.0 is above autolr.lr_max=1.0"),
    (
        "lr_policy=step lr_policy.gamma=0",
        "lr_policy.gamma=0.0 is out of range: expected a number > 0",
    ),
    (
        "lr_policy=cyclic lr_policy.cycles=0",
        "lr_policy.cycles=0 is out of range: expected an integer >= 1",
    ),
    (
        "lr_policy=sgdr lr_policy.l_min=-1",
        "lr_policy.l_min=-1.0 is out of range: expected a number >= 0",
    ),
    ("dataset.image_size=0", "dataset.image_size=0 is out of range: expected an integer >= 1"),
    (
        "dataset.crop_scale=[0.5,0.2]",
        "dataset.crop_scale=[0.5, 0.2] is out of range: expected [low, high] with 0 < low <= high <= 1",
    ),
    (
        "dataset.num_workers=-2",
        "dataset.num_workers=-2 is out of range: expected null (chosen from the cores) or >= 0",
    ),
    (
        "dataset.num_classes=1000",
        "dataset.num_classes=1000 is out of range: expected an integer from 4 (half train, half test) to 432 (the generator's distinct classes)",
    ),
    (
        "dataset.images_per_class=1",
        "dataset.images_per_class=1 is out of range: expected an integer >= 2",
    ),
    ("dataset.cache=disk", "dataset.cache=disk is out of range: expected none or ram"),
    (
        "trainer.precision=fp8",
        "trainer.precision=fp8 is out of range: expected fp32, bf16 or fp16",
    ),
    ("model.embedding_dim=0", "model.embedding_dim=0 is out of range: expected an integer >= 1"),
    (
        "model.pooling=mean",
        "model.pooling=mean is out of range: expected avg, max, avgmax or cls",
    ),
    ("eval.ks=[1,0]", "eval.ks=[1, 0] is out of range: expected integers >= 1"),
    (
        "eval.val_classes=1.0",
        "eval.val_classes=1.0 is out of range: expected a share strictly between 0 and 1",
    ),
    (
        "pretrain.num_classes=60",
        "pretrain.num_classes=60 is out of range: the synthetic source domain has at most 48 classes",
    ),
    (
        "pruning.units=[7] pruning.remove_last=1",
        "pruning.units=[7] and pruning.remove_last=1: set one of them (pruning.units=[] or pruning.remove_last=0 for the other)",
    ),
    (
        "loss=softmax loss.temperature=0",
        "loss.temperature=0.0 is out of range: expected a number > 0",
    ),
]


@pytest.mark.parametrize(("override", "line"), BAD, ids=[b[0] for b in BAD])
def test_out_of_range_value_names_key_value_and_range(override, line):
    """Catches a value outside its range passing start-up (the run would train on nonsense)
    and a message that does not say which key, which value and what is allowed."""
    with pytest.raises(DmlError) as err:
        check_config(compose_cfg(override.split()))
    assert str(err.value) == line


def test_defaults_and_every_option_pass():
    """Catches a range that rejects a shipped config (the quick start, a paper recipe)."""
    for overrides in ([], ["experiment=cub200_autolr"], ["experiment=proxy_anchor_official"]):
        check_config(compose_cfg([*overrides, "data_dir=/tmp/d"]))
    policies = ("constant", "step", "cyclic", "sgdr", "llrd", "gradual_unfreeze", "autorgn")
    for policy in policies:
        check_config(compose_cfg([f"lr_policy={policy}"]))
    for model in ("resnet18", "resnet50", "vit_tiny", "vit_b_16"):  # vit_tiny: pooling=cls
        check_config(compose_cfg([f"model={model}"]))


def test_every_rule_names_a_real_key():
    """Catches a rule whose key was renamed or misspelt: it would silently check nothing."""
    configs = [
        compose_cfg(extra)
        for extra in (
            [],
            ["lr_policy=step"],
            ["lr_policy=cyclic"],
            ["lr_policy=sgdr"],
            ["loss=softmax"],
        )
    ]
    for key in RULES:
        assert any(OmegaConf.select(c, key, default="absent") != "absent" for c in configs), key


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "eval.ks=[1,30]",
            "eval.ks=[1, 30]: k=30 exceeds the 17 neighbours each query has (18 test images)",
        ),
        (
            "trainer.batch_size=24",
            "trainer.batch_size=24: expected at most 18 (the training split's images)",
        ),
    ],
)
def test_values_checked_against_the_data_say_which_count(tmp_path, capsys, override, line):
    """Catches a k or a batch larger than the data reaching faiss or the sampler (a traceback
    or an empty epoch) instead of a line that names the count it was checked against."""
    cfg = compose_cfg([*TINY_OVERRIDES, f"data_dir={tmp_path / 'data'}", override])
    code = run(cfg, tmp_path / "run")
    assert code == 1
    assert capsys.readouterr().err.strip() == f"error: {line}"
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["status"] == "failed" and saved["error"] == line


def test_a_training_split_with_one_class_is_refused():
    """Catches a one-class training split reaching the loss (no negatives: nothing to learn)."""
    from dml.validation import check_data_counts

    cfg = compose_cfg([])
    with pytest.raises(DmlError) as err:
        check_data_counts(cfg, train_classes=1, train_images=30, test_images=1500)
    assert str(err.value) == (
        "dataset synthetic: the training split has 1 class; training needs at least 2"
    )
    check_data_counts(cfg, train_classes=2, train_images=40, test_images=9)  # ks up to 8 fit


def test_with_a_gallery_ks_are_bounded_by_the_gallery_not_the_queries():
    """Catches In-Shop's ks checked against the queries (n - 1) instead of the gallery they
    search: 5 queries allow k up to 4 among themselves, but 8 gallery images allow k = 8."""
    from dml.validation import check_data_counts

    cfg = compose_cfg([])  # ks 1, 2, 4, 8
    check_data_counts(cfg, train_classes=2, train_images=40, test_images=5, gallery_images=8)
    with pytest.raises(DmlError) as err:
        check_data_counts(cfg, train_classes=2, train_images=40, test_images=50, gallery_images=7)
    assert str(err.value) == (
        "eval.ks=[1, 2, 4, 8]: k=8 exceeds the 7 gallery images each query is searched against"
    )
