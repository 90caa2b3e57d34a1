"""The paper recipes and table sweeps hold the authors' settings, value by value.

Each expected value is typed from ../shared/autolr-spec.md section 9, the supplement
(sections C and E) or proxy-anchor's official code, not read back from our configs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dml.cli import compose_train
from dml.config import paper_epoch
from tests.conftest import CONFIG_DIR, compose_cfg


def recipe(*overrides: str):
    """A composed, resolved config (as a job of train.py would see it)."""
    cfg = compose_cfg([*overrides, "data_dir=/tmp/d"])
    OmegaConf.resolve(cfg)
    return cfg


def sweep_rows(sweep: str) -> list[str]:
    """The experiment rows a `python train.py -m experiment=<sweep>` launches."""
    cfg = compose_train([f"experiment={sweep}"], hydra=True)
    return cfg.hydra.sweeper.params["+experiment@_global_"].split(",")


def job(sweep: str, row: str):
    """One job of a sweep: the sweep's base plus the row, as Hydra's launcher composes it."""
    return recipe(f"experiment={sweep}", f"+experiment@_global_={row}")


# the paper's SGD (spec 9): Nesterov, momentum 0.9, wd 5e-4, units 1e-3, head 1e-2
PAPER_SGD = {
    "optimizer.name": "sgd",
    "optimizer.lr": 1e-3,
    "optimizer.head_lr": 1e-2,
    "optimizer.weight_decay": 5e-4,
    "optimizer.momentum": 0.9,
    "optimizer.nesterov": True,
}


SOFTMAX_PAPER = {
    # spec 9: ResNet-50, original ImageNet weights, pruning 15,16, 224 px; last stride 1 in the
    # 40-epoch recipe (the early reference code), 2 in the 50-epoch one (extra below)
    "model.arch": "resnet50",
    "model.pretrained": "imagenet",
    "model.weights": "IMAGENET1K_V1",
    "model.last_stride": 1,
    "pruning.units": [15, 16],
    "dataset.image_size": 224,
    # train Resize((224,224)) bicubic + flip; test Resize((256,256)) bicubic + CenterCrop(224)
    "dataset.random_resized_crop": False,
    "dataset.hflip": True,
    "dataset.interpolation": "bicubic",
    "dataset.resize_size": 256,
    "dataset.eval_resize": "square",
    # plain shuffling, batch 40
    "trainer.samples_per_class": 0,
    "trainer.batch_size": 40,
    "trainer.warmup_epochs": 0,
    # the paper head and its init, retrieval on pooled features with flip averaging
    "loss.name": "softmax",
    "model.head": "paper",
    "model.embedding_dim": 512,
    "loss.classifier_std": 0.001,
    "eval.feature": "pooled",
    "eval.flip": True,
    **PAPER_SGD,
    # the paper picks the epoch on the test classes
    "eval.selection": "test",
}


def assert_values(cfg, expected: dict) -> None:
    wrong = {k: (OmegaConf.select(cfg, k), v) for k, v in expected.items()}
    wrong = {k: (got, want) for k, (got, want) in wrong.items() if got != want}
    assert not wrong, f"(got, expected): {wrong}"


@pytest.mark.parametrize(
    ("experiment", "extra"),
    [
        # spec 9: CUB 40 epochs, x0.2 at 30, AutoLR alpha 2 beta 0.4 (supplement A)
        (
            "cub200_autolr",
            {"dataset.name": "cub200", "trainer.epochs": 40, "autolr.drop_epoch": 30}
            | {"autolr.alpha": 2.0, "autolr.beta": 0.4, "autolr.drop_factor": 0.2},
        ),
        # supplement A: Cars best at alpha 3, beta 0.6
        (
            "cars196_autolr",
            {"dataset.name": "cars196", "trainer.epochs": 40, "autolr.drop_epoch": 30}
            | {"autolr.alpha": 3.0, "autolr.beta": 0.6},
        ),
        # supplement E: 50 epochs, AutoLR x0.2 at 40, last stride 2 (the final reference code)
        (
            "cub200_autolr_50",
            {"trainer.epochs": 50, "autolr.drop_epoch": 40, "autolr.drop_factor": 0.2}
            | {"model.last_stride": 2},
        ),
        # Table 4's best step row: l_max 1e-3, x0.5 at 40 of 50, on the same stride-2 model
        (
            "cub200_step",
            {"trainer.epochs": 50, "lr_policy.name": "step", "lr_policy.l_max": 1e-3}
            | {"lr_policy.drop_epoch": 40, "lr_policy.gamma": 0.5, "model.last_stride": 2},
        ),
        # the paper's recipe carried to SOP and In-Shop unchanged, with their own Recall@K
        (
            "sop_autolr",
            {"dataset.name": "sop", "trainer.epochs": 40, "autolr.alpha": 2.0}
            | {"eval.ks": [1, 10, 100, 1000]},
        ),
        (
            "inshop_autolr",
            {"dataset.name": "inshop", "trainer.epochs": 40, "autolr.beta": 0.4}
            | {"eval.ks": [1, 10, 20, 30, 40, 50]},
        ),
    ],
)
def test_softmax_paper_recipes(experiment, extra):
    """Catches any recipe value drifting from the authors' code (head, transforms, feature...)."""
    assert_values(recipe(f"experiment={experiment}"), SOFTMAX_PAPER | extra)


OFFICIAL_PA = {
    # proxy-anchor's official code: ResNet-50, 512-d on avg + max pooling, BN frozen
    "model.arch": "resnet50",
    "model.weights": "IMAGENET1K_V1",
    "model.pooling": "avgmax",
    "model.embedding_dim": 512,
    "model.freeze_bn": True,
    "model.head": "linear",
    "loss.name": "proxy_anchor",
    "loss.margin": 0.1,
    "loss.alpha": 32.0,
    # RandomResizedCrop 224 (torchvision's default scale) + flip; Resize 256 + CenterCrop 224
    "dataset.random_resized_crop": True,
    "dataset.crop_scale": [0.08, 1.0],
    "dataset.image_size": 224,
    "dataset.resize_size": 256,
    "dataset.eval_resize": "shorter",
    # batch 120 shuffled, 60 epochs, retrieval on the embedding
    "trainer.batch_size": 120,
    "trainer.samples_per_class": 0,
    "trainer.epochs": 60,
    "eval.feature": "embedding",
    "eval.selection": "test",
}


def test_table2_sweep_rows():
    """Catches a Table 2 row missing, or a row changing more than the one thing it adds."""
    rows = sweep_rows("table2")
    assert len(rows) == 8
    for ds, every in (("cub200", 5), ("cars196", 10)):
        official = job("table2", f"table2/{ds}_official")
        assert_values(official, OFFICIAL_PA | {"dataset.name": ds, "pruning.units": []})
        # AdamW lr 1e-4 wd 1e-4, embedding at 1e-4, proxies 100x; x0.5 every 5 (Cars 10);
        # 5 warm-up epochs training only the embedding and the proxies
        assert_values(
            official,
            {"optimizer.name": "adamw", "optimizer.lr": 1e-4, "optimizer.weight_decay": 1e-4}
            | {"optimizer.head_lr": 1e-4, "loss.lr_mult": 100.0, "trainer.warmup_epochs": 5}
            | {"lr_policy.name": "step", "lr_policy.every": every, "lr_policy.gamma": 0.5},
        )
        sgd = job("table2", f"table2/{ds}_sgd")
        assert_values(sgd, OFFICIAL_PA | {"pruning.units": [], "lr_policy.every": every})
        assert_values(
            sgd,
            {"optimizer.name": "sgd", "optimizer.lr": 1e-3, "optimizer.head_lr": 1e-2}
            | {"optimizer.nesterov": True, "optimizer.weight_decay": 5e-4, "lr_policy.l_max": 1e-3}
            # proxies at 100x the backbone LR: head 1e-2 x 10 = 1e-1 = 100 x 1e-3
            | {"loss.lr_mult": 10.0},
        )
        pruned = job("table2", f"table2/{ds}_sgd_pruning")
        assert_values(pruned, {"pruning.units": [15, 16], "optimizer.name": "sgd"})
        auto = job("table2", f"table2/{ds}_sgd_pruning_autolr")
        assert_values(
            auto,
            OFFICIAL_PA
            | {"pruning.units": [15, 16], "optimizer.name": "sgd", "lr_policy.name": "autolr"}
            | {"autolr.alpha": 2.0, "autolr.beta": 0.4, "autolr.drop_epoch": 45}
            | {"trainer.warmup_epochs": 0, "dataset.name": ds},
        )


def test_table4_sweep_rows():
    """Catches a Table 4 cell missing or holding the wrong hyper-parameters (37 runs)."""
    rows = sweep_rows("table4")
    assert len(rows) == 37 and len(set(rows)) == 37
    cells = set()
    for row in rows:
        cfg = job("table4", row)
        # spec 9: the 50-epoch protocol keeps layer4's first stride at 2 (ft_net_4_1)
        fifty = {"trainer.epochs": 50, "dataset.name": "cub200", "model.last_stride": 2}
        assert_values(cfg, SOFTMAX_PAPER | fifty)
        p = cfg.lr_policy
        if p.name == "step":
            cells.add(("step", p.drop_epoch, p.gamma, p.l_max))
        elif p.name == "cyclic":
            cells.add(("cyclic", p.cycles, p.l_max, p.l_min))
        elif p.name == "sgdr":
            cells.add(("sgdr", p.resets, p.l_max, p.l_min))
        else:
            a = cfg.autolr
            cells.add(("autolr", a.alpha, a.beta, p.l_max, a.drop_epoch, a.drop_factor))
    ranges = [(1e-3, 1e-4), (1e-2, 1e-3)]
    expected = {("autolr", 2.0, 0.4, 1e-3, 40, 0.2)}
    for hi, lo in ranges:
        expected |= {("step", td, g, hi) for td in (30, 40) for g in (0.1, 0.2, 0.5)}
        expected |= {("cyclic", c, hi, lo) for c in (1, 3, 5, 7, 9, 15)}
        expected |= {("sgdr", r, hi, lo) for r in (0, 2, 4, 6, 8, 14)}
    assert cells == expected


def test_synthetic_sweeps_scale_epochs_and_use_val():
    """Catches the CPU-sized sweeps using the 50-epoch drop points or peeking at the test set."""
    rows = sweep_rows("table4_synthetic")
    assert len(rows) == 7
    step = job("table4_synthetic", "table4/step_td40_g0.5_lr1e-3")
    # 40 of 50 epochs -> 8 of 10
    assert_values(step, {"dataset.name": "synthetic", "trainer.epochs": 10})
    assert_values(step, {"lr_policy.drop_epoch": 8, "lr_policy.gamma": 0.5})
    assert_values(step, {"eval.selection": "val"})
    auto = job("table4_synthetic", "table4/autolr_a2_b0.4")
    assert_values(auto, {"autolr.drop_epoch": 8, "lr_policy.name": "autolr"})
    # Table 4's cells keep the paper's SGD, not the twin's 3e-3: with optimizer.lr 3e-3 the
    # head would run at 1e-2 * l_max / 3e-3 = 3.3e-3, a third of the paper's 10x the units
    for row in rows:
        assert_values(job("table4_synthetic", row), PAPER_SGD | {"lr_policy.l_max": 1e-3})
    assert len(sweep_rows("table2_synthetic")) == 4
    official = job("table2_synthetic", "table2_synthetic/official")
    # x0.5 every 5 of 60 epochs and 5 warm-up epochs -> 1 of 10 each
    assert_values(official, {"lr_policy.every": 1, "trainer.warmup_epochs": 1})
    assert_values(official, {"optimizer.name": "adamw", "eval.selection": "val"})
    pruned = job("table2_synthetic", "table2_synthetic/sgd_pruning")
    assert_values(pruned, {"pruning.remove_last": 2, "pruning.units": []})


def test_figure1_grid_holds_the_paper_picks():
    """Catches a Figure 1 grid that misses supplement A's (2, 0.4) or (3, 0.6)."""
    cfg = compose_train(["experiment=figure1"], hydra=True)
    params = cfg.hydra.sweeper.params
    alphas = [float(a) for a in params["autolr.alpha"].split(",")]
    betas = [float(b) for b in params["autolr.beta"].split(",")]
    assert {2.0, 3.0} <= set(alphas) and {0.4, 0.6} <= set(betas)
    assert params["+experiment@_global_"].split(",") == ["cub200_autolr", "cars196_autolr"]
    # the CPU-sized grid drops x0.2 at 30 of 40 epochs, scaled: epoch 8 of 10
    twin = recipe("experiment=figure1_synthetic")
    assert_values(twin, {"autolr.drop_epoch": 8, "autolr.drop_factor": 0.2, "trainer.epochs": 10})
    # the CUB recipe's units at 1e-3 and head at 1e-2 (AutoLR's starting LRs), not the twin's
    assert_values(twin, PAPER_SGD | {"lr_policy.l_max": 1e-3})


def test_twin_default_is_the_paper_sgd_at_3e_3():
    """Catches the twin's default falling back to the paper's 1e-3 (the premise check of issue
    6 fails there: freezing units 1-3 costs more than freezing 5-7) or to another optimizer."""
    cfg = recipe()
    assert_values(cfg, {**PAPER_SGD, "optimizer.lr": 3e-3, "lr_policy.l_max": 3e-3})
    assert_values(cfg, {"dataset.name": "synthetic", "autolr.head_lr": 1e-2})


def test_paper_epoch_scaling_by_hand():
    """Catches a wrong scale (e.g. floor instead of round, or 0 for short runs)."""
    assert paper_epoch(30, 50) == 30
    assert paper_epoch(30, 10) == 6  # 30 * 10 / 50
    assert paper_epoch(40, 10) == 8
    assert paper_epoch(5, 10, 60) == 1  # 0.83 rounds to 1
    assert paper_epoch(45, 10, 60) == 8  # 7.5 -> 8
    assert paper_epoch(1, 10) == 1  # 0.2 would be 0: at least 1


def test_resize_follows_image_size_for_real_datasets():
    """Catches `dataset=cub200 dataset.image_size=32` evaluating a 32-px crop of a 256 resize."""
    from dml.data.transforms import describe_eval, eval_resize_size

    for ds in ("cub200", "cars196"):
        cfg = recipe(f"dataset={ds}", "dataset.image_size=32")
        assert eval_resize_size(cfg.dataset) == 37  # round(32 * 256 / 224)
        assert "crop 32" in describe_eval(cfg.dataset)


def test_optuna_sweeper_config_composes():
    """Catches the Optuna bundle naming parameters or a sweeper the plugin does not know."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = compose_train(["experiment=figure1_optuna"], hydra=True)
    sweeper = cfg.hydra.sweeper
    assert "optuna" in sweeper._target_.lower() and sweeper.direction == "maximize"
    assert set(sweeper.params) == {"autolr.alpha", "autolr.beta"}
    assert cfg.eval.selection == "val"


def test_every_experiment_file_is_reachable():
    """Catches a row file on disk that no sweep or recipe test composes (dead config)."""
    root = Path(CONFIG_DIR) / "experiment"
    rows = set(sweep_rows("table4")) | set(sweep_rows("table2"))
    rows |= set(sweep_rows("table2_synthetic")) | {"table2/base", "table2_synthetic/base"}
    for sub in ("table2", "table4", "table2_synthetic"):
        for path in (root / sub).glob("*.yaml"):
            assert f"{sub}/{path.stem}" in rows, path


# Table 3's rows (supplement D): (pruning option, pruned unit ids, AutoLR or not)
TABLE3_ROWS = [
    ("none_step", [], False),
    ("16_step", [16], False),
    ("15_16_step", [15, 16], False),
    ("none_autolr", [], True),
    ("16_autolr", [16], True),
    ("15_16_autolr", [15, 16], True),
]


def test_table3_sweep_is_six_rows_on_three_fgvc_datasets():
    """Bug: a Table 3 row or dataset missing from the one multirun command."""
    assert sweep_rows("table3") == [f"table3/{row}" for row, _, _ in TABLE3_ROWS]
    cfg = compose_train(["experiment=table3"], hydra=True)
    assert cfg.hydra.sweeper.params["dataset"] == "cub200,cars196,aircraft"


@pytest.mark.parametrize(("row", "units", "autolr"), TABLE3_ROWS)
@pytest.mark.parametrize("dataset", ["cub200", "cars196", "aircraft"])
def test_table3_jobs_are_the_paper_recipe_for_classification(row, units, autolr, dataset):
    """Catches a Table 3 job that is not the paper's recipe (supplement D: ResNet-50, 224 px,
    40 epochs), that trains retrieval, prunes the wrong units, or whose baseline row differs
    from its AutoLR row in more than the per-unit tuning (both drop x0.2 at epoch 30)."""
    cfg = recipe("experiment=table3", f"+experiment@_global_=table3/{row}", f"dataset={dataset}")
    policy = (
        {"lr_policy.name": "autolr", "autolr.drop_epoch": 30, "autolr.drop_factor": 0.2}
        | {"autolr.alpha": 2.0, "autolr.beta": 0.4}
        if autolr
        else {"lr_policy.name": "step", "lr_policy.l_max": 1e-3}
        | {"lr_policy.drop_epoch": 30, "lr_policy.gamma": 0.2}
    )
    expected = SOFTMAX_PAPER | policy | {"pruning.units": units, "pruning.remove_last": 0}
    expected |= {"task": "classification", "trainer.epochs": 40, "dataset.name": dataset}
    assert_values(cfg, expected)


def test_table3_twin_rows_prune_resnet18_like_the_paper_prunes_resnet50():
    """Bug: the twin's rows not pruning 0 / 1 / 2 trailing units, or not classification."""
    removed = {}
    for row in sweep_rows("table3_synthetic"):
        cfg = job("table3_synthetic", row)
        assert (cfg.task, cfg.dataset.name, cfg.loss.name) == (
            "classification",
            "synthetic",
            "softmax",
        )
        assert (cfg.model.head, cfg.optimizer.lr, cfg.optimizer.head_lr) == ("paper", 1e-3, 1e-2)
        # x0.2 at 30 of 40 epochs, scaled to the twin's 6: epoch 4 (round(4.5) -> 4, banker's)
        drop = cfg.autolr.drop_epoch if cfg.lr_policy.name == "autolr" else cfg.lr_policy.drop_epoch
        assert drop == 4
        removed[row.split("/")[1]] = cfg.pruning.remove_last
    assert removed == {
        "none_step": 0,
        "last1_step": 1,
        "last2_step": 2,
        "none_autolr": 0,
        "last1_autolr": 1,
        "last2_autolr": 2,
    }


@pytest.mark.parametrize(
    ("experiment", "dataset", "ks"),
    [
        ("sop_proxy_anchor_official", "sop", [1, 10, 100, 1000]),
        ("inshop_proxy_anchor_official", "inshop", [1, 10, 20, 30, 40, 50]),
    ],
)
def test_proxy_anchor_official_on_sop_and_inshop(experiment, dataset, ks):
    """Catches the SOP / In-Shop recipes drifting from proxy-anchor's README command (lr 6e-4,
    batch 180, --warm 1, --bn-freeze 0, --lr-decay-step 20, --lr-decay-gamma 0.25) or
    losing the dataset's customary Recall@K."""
    expected = OFFICIAL_PA | {
        "dataset.name": dataset,
        "eval.ks": ks,
        "model.freeze_bn": False,
        "optimizer.name": "adamw",
        "optimizer.lr": 6e-4,
        "optimizer.head_lr": 6e-4,
        "optimizer.weight_decay": 1e-4,
        "loss.lr_mult": 100.0,
        "trainer.batch_size": 180,
        "trainer.warmup_epochs": 1,
        "lr_policy.name": "step",
        "lr_policy.l_max": 6e-4,
        "lr_policy.every": 20,
        "lr_policy.gamma": 0.25,
    }
    assert_values(recipe(f"experiment={experiment}"), expected)
