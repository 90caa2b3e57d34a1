"""Every config option composes, and schema violations fail at compose time naming the key."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from tests.conftest import CONFIG_DIR, compose_cfg

GROUPS = [
    "dataset",
    "model",
    "pruning",
    "loss",
    "optimizer",
    "lr_policy",
    "autolr",
    "trainer",
    "eval",
    "logger",
    "pretrain",
]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_composes_and_resolves(group):
    for option in options(group):
        cfg = compose_cfg([f"{group}='{option}'", "data_dir=/tmp/dml-data"])
        OmegaConf.resolve(cfg)
        assert cfg[group] is not None


def test_exact_keys_other_tools_use():
    cfg = compose_cfg(["data_dir=/tmp/d"])
    for key in (
        "dataset.root",
        "dataset.image_size",
        "trainer.epochs",
        "trainer.batch_size",
        "seed",
        "autolr.alpha",
        "autolr.beta",
        "autolr.threshold",
        "autolr.threshold_decay",
        "autolr.threshold_floor",
        "autolr.max_trials",
        "autolr.stem_factor",
        "autolr.head_lr",
        "autolr.drop_epoch",
        "autolr.drop_factor",
    ):
        assert OmegaConf.select(cfg, key) is not None, key


def test_paper_defaults():
    a = compose_cfg().autolr
    assert (a.alpha, a.beta, a.threshold, a.threshold_decay, a.threshold_floor) == (
        2.0,
        0.4,
        0.94,
        0.99,
        0.8,
    )
    assert (a.stem_factor, a.drop_epoch, a.drop_factor) == (0.5, 30, 0.2)
    opt = compose_cfg(["optimizer=sgd"]).optimizer
    assert (opt.lr, opt.head_lr, opt.momentum, opt.nesterov, opt.weight_decay) == (
        1e-3,
        1e-2,
        0.9,
        True,
        5e-4,
    )


def test_misspelt_key_fails_naming_it():
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg(["dataset.imag_size=32"])
    assert "imag_size" in str(err.value.__cause__ or err.value)


def test_wrong_type_fails_naming_key():
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg(["trainer.epochs=many"])
    assert "epochs" in str(err.value.__cause__ or err.value)


def test_unknown_choice_lists_valid_options():
    with pytest.raises(MissingConfigException) as err:
        compose_cfg(["loss=contrastive"])
    assert "proxy_anchor" in str(err.value) and "triplet" in str(err.value)


def test_experiment_bundles_compose():
    """Catches a bundle naming a missing group option or key (the [optuna] extra's bundle is
    composed by tests/test_recipes.py when hydra-optuna-sweeper is installed)."""
    try:
        optuna = importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
    except ModuleNotFoundError:  # no hydra_plugins package at all
        optuna = False
    for option in options("experiment"):
        if option == "figure1_optuna" and not optuna:
            continue
        cfg = compose_cfg([f"experiment={option}", "data_dir=/tmp/d"])
        OmegaConf.resolve(cfg)


def test_schema_defaults_are_the_default_runs():
    """Catches a dataclass default and its YAML disagreeing (trainer.epochs 40 in the schema,
    10 in the YAML): code or scripts that build a config from the schemas would train another
    run than `python train.py`. Each group's default option must compose to its schema."""
    from dml.config import SCHEMAS

    cfg = compose_cfg(["data_dir=/tmp/d"])
    OmegaConf.resolve(cfg)
    picked = {"dataset": "synthetic", "loss": "proxy_anchor", "lr_policy": "autolr"}
    for group, schemas in SCHEMAS.items():
        schema = schemas[picked.get(group, group)]
        defaults = OmegaConf.to_container(OmegaConf.structured(schema))
        composed = OmegaConf.to_container(cfg[group])
        differ = {
            k: (v, composed[k]) for k, v in defaults.items() if v != "???" and composed[k] != v
        }
        assert not differ, f"{group}: (schema, yaml) {differ}"


def test_an_old_run_config_gains_the_keys_added_since():
    """Bug: scripts reading an older results.json (before task, eval.val_images,
    trainer.save_epoch_weights, loss.classifier_std) failing on a missing key, or the
    defaults overwriting what the run actually used."""
    from dml.config import with_schema_defaults

    old = {
        "dataset": {"name": "synthetic", "root": "data/x", "num_classes": 20},
        "model": {"arch": "resnet18"},
        "loss": {"name": "softmax", "temperature": 0.5},
        "trainer": {"epochs": 3},
        "eval": {"selection": "test"},
        "seed": 4,
    }
    cfg = with_schema_defaults(old)
    assert cfg.task == "retrieval" and cfg.seed == 4
    assert (cfg.dataset.num_classes, cfg.dataset.images_per_class) == (20, 30)
    assert (cfg.loss.temperature, cfg.loss.classifier_std) == (0.5, None)
    assert (cfg.trainer.epochs, cfg.trainer.save_epoch_weights) == (3, False)
    assert (cfg.eval.selection, cfg.eval.val_images) == ("test", 0.1)


def test_task_classification_selects_the_softmax_loss():
    """Bug: `python train.py task=classification` (the README's command) composing the
    default proxy-anchor loss, which classification refuses; or task=retrieval changing it."""
    assert compose_cfg(["task=classification"]).loss.name == "softmax"
    assert compose_cfg(["task=classification"]).task == "classification"
    assert compose_cfg([]).loss.name == "proxy_anchor" and compose_cfg([]).task == "retrieval"


def test_vits_tune_with_the_feasible_alpha_beta_and_resnets_keep_the_papers():
    """Bug: model=vit_tiny starting AutoLR with the paper's alpha 2, beta 0.4, which are
    infeasible over a ViT's narrow v0 (the run stops at epoch 0), or the ViT pair leaking
    into ResNet runs, or beating an explicit autolr.alpha on the command line."""
    from dml.autolr.rules import initial_targets
    from dml.errors import DmlError

    pairs = {
        m: (compose_cfg([f"model={m}"]).autolr.alpha, compose_cfg([f"model={m}"]).autolr.beta)
        for m in ("resnet18", "resnet50", "vit_tiny", "vit_b_16")
    }
    assert pairs == {
        "resnet18": (2.0, 0.4),
        "resnet50": (2.0, 0.4),
        "vit_tiny": (1.0, 1.0),
        "vit_b_16": (1.0, 1.0),
    }
    assert compose_cfg(["model=vit_tiny", "autolr.alpha=3"]).autolr.alpha == 3.0
    paper = compose_cfg(["model=vit_tiny", "autolr=default"]).autolr
    assert (paper.alpha, paper.beta) == (2.0, 0.4)
    # vit_tiny's measured v0 on the twin (first trial, 64 px, seed 0), max / min = 4.01
    v0 = [1.560e-6, 8.133e-7, 5.410e-7, 4.759e-7, 4.601e-7, 3.890e-7]
    with pytest.raises(DmlError, match="infeasible AutoLR bounds"):
        initial_targets(v0, 2.0, 0.4)
    # 1, 1: a straight line from min(v0) = 3.890e-7 to max(v0) = 1.560e-6, step 2.342e-7
    assert initial_targets(v0, 1.0, 1.0) == pytest.approx(
        [3.890e-7, 6.232e-7, 8.574e-7, 1.0916e-6, 1.3258e-6, 1.560e-6], rel=1e-4
    )
