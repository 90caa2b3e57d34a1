"""A new part of each family (loss, LR policy, dataset, backbone family, task) defined only
here, registered as docs/extending.md says, composed with Hydra and trained by dml.run: no
file of the package learns its name. Each would fail if a dispatch still listed the shipped
options by name, if a schema or a check did not come from the registry, or if the part's
option could not be composed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hydra.core.config_store import ConfigStore
from PIL import Image
from pytorch_metric_learning import losses
from torch import nn

import dml.config
from dml.config import ModelConfig
from dml.data import DATASETS, RetrievalData, Split
from dml.data.base import DatasetConfig, register_dataset
from dml.errors import DmlError
from dml.evaluation.selection import holdout_classes
from dml.losses import LOSSES, LossConfig
from dml.models import FAMILIES, UnitMap, register_family
from dml.policies import POLICIES, LRPolicyConfig
from dml.policies.schedules import SchedulePolicy
from dml.predicates import POSITIVE, integer_at_least
from dml.run import run, split_data
from dml.tasks import TASKS, Task, register_task
from dml.validation import check_config
from tests.conftest import TINY_OVERRIDES, compose_cfg

CS = ConfigStore.instance()


def _run(tmp_path: Path, *overrides: str) -> dict:
    tiny = TINY_OVERRIDES
    if "dataset=blobs" in overrides:  # the tiny synthetic set's keys are not the blobs'
        tiny = [o for o in tiny if not o.startswith("dataset.")]
    cfg = compose_cfg([*tiny, f"data_dir={tmp_path / 'data'}", *overrides])
    assert run(cfg, tmp_path / "run") == 0
    return json.loads((tmp_path / "run" / "results.json").read_text())


# -- a loss ---------------------------------------------------------------------------------
@dataclass
class ContrastiveConfig(LossConfig):
    pos_margin: float = 0.0
    neg_margin: float = 1.0


@pytest.fixture
def contrastive():
    @LOSSES.register("contrastive", ContrastiveConfig, checks={"neg_margin": POSITIVE})
    def build(cfg, num_classes: int, embedding_dim: int) -> nn.Module:
        return losses.ContrastiveLoss(pos_margin=cfg.pos_margin, neg_margin=cfg.neg_margin)

    dml.config.register_configs()  # its schema, for a YAML's defaults list
    CS.store(group="loss", name="contrastive", node=ContrastiveConfig(name="contrastive"))
    yield
    LOSSES.remove("contrastive")


def test_a_new_loss_is_one_module_and_one_yaml(tmp_path, contrastive):
    """Bug: a loss dispatch by name, or checks that do not come from the loss's entry."""
    saved = _run(tmp_path, "loss=contrastive", "lr_policy=constant")
    assert saved["config"]["loss"] == {
        "name": "contrastive",
        "lr_mult": 1.0,
        "pos_margin": 0.0,
        "neg_margin": 1.0,
    }
    assert saved["history"][0]["loss"] > 0 and "loss" not in saved["history"][0]["lr"]
    with pytest.raises(DmlError) as info:
        check_config(compose_cfg(["loss=contrastive", "loss.neg_margin=0"]))
    assert str(info.value) == "loss.neg_margin=0.0 is out of range: expected a number > 0"


# -- an LR policy ---------------------------------------------------------------------------
@dataclass
class HalvingConfig(LRPolicyConfig):
    every: int = 1  # epochs between halvings


@pytest.fixture
def halving():
    @POLICIES.register("halving", HalvingConfig, checks={"every": integer_at_least(1)})
    def build(cfg) -> SchedulePolicy:
        l_max, every = float(cfg.l_max), int(cfg.every)
        return SchedulePolicy("halving", l_max, lambda t, total: l_max * 0.5 ** (t // every))

    dml.config.register_configs()
    CS.store(group="lr_policy", name="halving", node=HalvingConfig(name="halving", l_max=0.01))
    yield
    POLICIES.remove("halving")


def test_a_new_lr_policy_is_one_module_and_one_yaml(tmp_path, halving):
    """Bug: a policy dispatch by name (the trainer or build_policy knowing the shipped ones)."""
    saved = _run(tmp_path, "lr_policy=halving", "trainer.epochs=3")
    assert [row["lr"]["unit1"] for row in saved["history"]] == pytest.approx([0.01, 0.005, 0.0025])
    with pytest.raises(DmlError, match="lr_policy.every=0 is out of range"):
        check_config(compose_cfg(["lr_policy=halving", "lr_policy.every=0"]))


# -- a dataset ------------------------------------------------------------------------------
@dataclass
class BlobsConfig(DatasetConfig):
    classes: int = 6
    per_class: int = 5


def _blobs(cfg) -> RetrievalData:
    """One colour per class with noise, as PNGs written on first use; half the classes train."""
    root = Path(cfg.root)
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for c in range(cfg.classes):
        for k in range(cfg.per_class):
            path = root / f"{c}_{k}.png"
            if not path.exists():
                root.mkdir(parents=True, exist_ok=True)
                pixels = np.full((24, 24, 3), 40 * c, dtype=np.int16) + rng.integers(0, 30, 3)
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
            paths.append(path)
            labels.append(c)
    half = cfg.classes // 2
    train = [i for i, y in enumerate(labels) if y < half]
    test = [i for i, y in enumerate(labels) if y >= half]
    return RetrievalData(
        Split([paths[i] for i in train], [labels[i] for i in train]),
        Split([paths[i] for i in test], [labels[i] for i in test]),
    )


@pytest.fixture
def blobs(tmp_path):
    register_dataset("blobs", "colour blobs", {"retrieval": _blobs}, schema=BlobsConfig)
    dml.config.register_configs()
    node = BlobsConfig(name="blobs", root=str(tmp_path / "blobs"), image_size=32, resize_size=32)
    CS.store(group="dataset", name="blobs", node=node)
    yield
    DATASETS.remove("blobs")


def test_a_new_dataset_is_one_module_and_one_yaml(tmp_path, blobs):
    """Bug: a dataset dispatch by name, or the task asking the dataset for a split it did not
    register (classification is refused in one line naming what it serves)."""
    saved = _run(tmp_path, "dataset=blobs", "lr_policy=constant")
    assert saved["config"]["dataset"]["classes"] == 6 and 0 <= saved["history"][0]["R@1"] <= 1
    cfg = compose_cfg(["dataset=blobs", "task=classification", "eval.selection=test"])
    with pytest.raises(DmlError) as info:
        split_data(cfg)
    assert str(info.value) == (
        "dataset=blobs is a retrieval benchmark (colour blobs) with no classification split: "
        "use task=retrieval"
    )


# -- a backbone family ----------------------------------------------------------------------
class TinyNet(nn.Module):
    """A torchvision-like classifier: stem, three conv blocks, pooled features, fc."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU()) for _ in range(3)
        )
        self.fc = nn.Linear(width, 1000)


@pytest.fixture
def tinynet():
    def set_classifier(model: TinyNet, num_classes: int) -> None:
        model.fc = nn.Linear(model.fc.in_features, num_classes)

    @register_family(
        "tinynet",
        TinyNet,
        classifier="fc",
        set_classifier=set_classifier,
        archs={"tinynet": lambda image_size, last_stride: TinyNet()},
    )
    def map_tinynet(model: TinyNet) -> UnitMap:
        return UnitMap(model.stem, list(model.blocks), [["0.weight"]] * len(model.blocks))

    CS.store(group="model", name="tinynet", node=ModelConfig(arch="tinynet", pretrained="none"))
    yield
    FAMILIES.remove("tinynet")


def test_a_new_backbone_family_is_one_mapping_function_and_one_yaml(tmp_path, tinynet):
    """Bug: the backbone code testing the model's type (ResNet, ViT) instead of asking the
    registered families, or AutoLR not finding the new family's units."""
    saved = _run(tmp_path, "model=tinynet", "pruning=none", "autolr.alpha=0.5", "autolr.beta=1")
    assert saved["autolr"]["units"] == ["unit1", "unit2", "unit3"]
    assert len(saved["autolr"]["trials"][0]["variation"]) == 3


# -- a task ---------------------------------------------------------------------------------
@pytest.fixture
def map_task():
    def score(evaluator, split: str, feature: str) -> dict[str, float]:
        return {"MAP@R": evaluator.retrieval(split, feature)["MAP@R"]}

    register_task(
        Task(
            name="ranking",
            metric="MAP@R",
            title="MAP@R (%) on the test classes",
            holdout=lambda train, eval_cfg: holdout_classes(train, eval_cfg.val_classes),
            eval_classes=lambda data: {},
            score=score,
            searches=True,
            val_classes="held-out classes",
            data="retrieval",  # the classes-disjoint split every retrieval dataset has
        )
    )
    CS.store(group="task", name="ranking", node={"task": "ranking"}, package="_global_")
    yield
    TASKS.remove("ranking")


def test_a_new_task_is_one_module_and_one_yaml(tmp_path, map_task, capsys):
    """Bug: run.py branching on the task's name (the metric ranked, the summary's title, the
    initial scores) instead of reading the task's entry."""
    saved = _run(tmp_path, "task=ranking", "lr_policy=constant", "trainer.epochs=2")
    assert set(saved["metrics"]["final"]) == {"MAP@R"}
    best = max(range(2), key=lambda i: (saved["history"][i]["MAP@R"], -i))
    assert saved["selection"]["epoch"] == best
    assert "MAP@R (%) on the test classes" in capsys.readouterr().out


def test_removing_a_part_leaves_the_shipped_ones():
    """Bug: a toy part leaking into other tests (the fixtures clean up after themselves)."""
    assert "contrastive" not in LOSSES and "halving" not in POLICIES and "blobs" not in DATASETS
    assert "tinynet" not in FAMILIES and "ranking" not in TASKS
