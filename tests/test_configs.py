"""Every config option composes, and schema violations fail at compose time naming the key."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from dml.cli import quote_numeric_choices
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


def _option_schema(group: str, body: dict):
    from dml.config import FAMILIES, FIXED

    if group in FAMILIES:
        return FAMILIES[group].get(body["name"]).schema
    return FIXED[group]


def _literal(value) -> bool:
    return not (isinstance(value, str) and "${" in value)


def test_no_option_restates_its_schemas_default():
    """Catches a value written twice, in a schema and in its option's YAML (the trainer's 15
    keys restated in trainer/default.yaml): the two drift apart unnoticed, and a change to
    the schema's default silently does not reach the runs."""
    import yaml

    restated = []
    for path in sorted(Path(CONFIG_DIR).glob("*/*.yaml")):
        group = path.parent.name
        if group in ("experiment", "task", "hydra"):
            continue
        body = yaml.safe_load(path.read_text()) or {}
        body.pop("defaults", None)
        if group in ("dataset", "loss", "lr_policy") and "name" not in body:
            continue  # an option extending another option of its group
        defaults = OmegaConf.to_container(OmegaConf.structured(_option_schema(group, body)))
        for key, value in body.items():
            if key != "name" and _literal(value) and defaults.get(key) == value:
                restated.append(f"{path.relative_to(CONFIG_DIR)}: {key}={value}")
    assert not restated, restated


def _experiment_base(path: Path) -> list[str]:
    """The overrides an experiment file's own defaults list amounts to."""
    import yaml

    body = yaml.safe_load(path.read_text()) or {}
    rel = path.relative_to(Path(CONFIG_DIR) / "experiment")
    # a sweep's row (table4/step_...) is judged against the default run, not its sweep's
    # base: the values that name the row (l_max 1e-3) stay in it whatever it is added to
    base: list[str] = []
    for entry in body.get("defaults", []):
        if isinstance(entry, str):  # built on another experiment
            parent = entry.lstrip("/").removeprefix("experiment/")
            if not entry.startswith("/") and rel.parent != Path("."):
                parent = f"{rel.parent}/{entry}"
            base = [f"experiment={parent}"]
        else:
            ((key, option),) = entry.items()
            group = key.removeprefix("override ").strip("/")
            if not group.startswith("hydra"):
                base.append(f"{group}={option}")
    return base


def _leaves(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def test_no_experiment_restates_what_its_defaults_give():
    """Catches an experiment bundle restating values its defaults already give
    (cub200_autolr.yaml restated about 35): a reader cannot see what the recipe changes,
    and a fix to a default does not reach it."""
    import yaml

    restated = []
    for path in sorted((Path(CONFIG_DIR) / "experiment").rglob("*.yaml")):
        body = yaml.safe_load(path.read_text()) or {}
        body = {k: v for k, v in body.items() if k not in ("defaults", "hydra")}
        if not body:
            continue
        base = compose_cfg(["data_dir=/tmp/d", *quote_numeric_choices(_experiment_base(path))])
        for key, value in _leaves(body):
            if _literal(value) and OmegaConf.select(base, key, default=object()) == value:
                restated.append(f"{path.relative_to(CONFIG_DIR)}: {key}={value}")
    assert not restated, restated


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
