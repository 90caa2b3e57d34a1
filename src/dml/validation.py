"""Range checks of a composed config, run at start-up before anything is built.

The schemas (dml.config) check types; these check values. The checks of a family's keys come
from its registry: the ones every option shares and the chosen option's own (so lr_policy.every
may be 0 for step but must be >= 1 for gradual_unfreeze); the other groups' are RULES below.
Each failure is one line naming the key, the value and what is allowed. Checks that need the
data (a k against the test set, a batch against the training split) run where the data is
loaded and say which count they compared with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dml.autolr.config import MODES
from dml.config import FAMILIES
from dml.errors import DmlError
from dml.evaluation.embed import FEATURES
from dml.evaluation.selection import PROTOCOLS
from dml.models.embedding import HEADS, POOLINGS
from dml.models.units import archs
from dml.predicates import (
    NON_NEGATIVE,
    POSITIVE,
    SHARE,
    UNIT_INTERVAL,
    at_least,
    choice,
    integer_at_least,
    registered,
)
from dml.registry import Check
from dml.tasks import TASKS, get_task
from dml.training.loop import PRECISIONS
from dml.training.optim import OPTIMIZERS

_ABSENT = object()


# key -> (check, what is allowed), for the groups that are not registered families
RULES: dict[str, Check] = {
    "seed": integer_at_least(0),
    "task": registered(TASKS.names),
    "trainer.epochs": integer_at_least(1),
    "trainer.batch_size": integer_at_least(2),
    "trainer.samples_per_class": (lambda x: x == 0 or at_least(2)(x), "0 or an integer >= 2"),
    "trainer.log_every": integer_at_least(1),
    "trainer.max_steps_per_epoch": integer_at_least(0, "0: the whole epoch"),
    "trainer.warmup_epochs": integer_at_least(0),
    "trainer.precision": choice(PRECISIONS),
    "optimizer.name": registered(OPTIMIZERS.names),
    **{f"optimizer.{key}": check for key, check in OPTIMIZERS.checks.items()},
    "autolr.alpha": POSITIVE,
    "autolr.beta": POSITIVE,
    "autolr.threshold": UNIT_INTERVAL,
    "autolr.threshold_decay": UNIT_INTERVAL,
    "autolr.threshold_floor": UNIT_INTERVAL,
    "autolr.max_trials": integer_at_least(1),
    "autolr.stem_factor": NON_NEGATIVE,
    "autolr.head_lr": POSITIVE,
    "autolr.drop_epoch": integer_at_least(0),
    "autolr.drop_factor": POSITIVE,
    "autolr.lr_min": POSITIVE,
    "autolr.lr_max": POSITIVE,
    "autolr.mode": choice(MODES),
    "autolr.probe_fraction": UNIT_INTERVAL,
    "model.arch": registered(archs),
    "model.embedding_dim": integer_at_least(1),
    "model.last_stride": choice([1, 2]),
    "model.pooling": choice(POOLINGS),
    "model.head": choice(HEADS),
    "pruning.remove_last": integer_at_least(0),
    "pruning.units": (lambda u: all(at_least(1)(k) for k in u), "unit ids >= 1"),
    "eval.ks": (lambda ks: len(ks) > 0 and all(at_least(1)(k) for k in ks), "integers >= 1"),
    "eval.batch_size": integer_at_least(1),
    "eval.feature": choice(FEATURES),
    "eval.selection": choice(PROTOCOLS),
    "eval.val_classes": SHARE,
    "eval.val_images": SHARE,
    "pretrain.epochs": integer_at_least(1),
    "pretrain.batch_size": integer_at_least(2),
    "pretrain.lr": POSITIVE,
    "pretrain.num_classes": integer_at_least(2),
    "pretrain.images_per_class": integer_at_least(1),
}


def family_rules(cfg: DictConfig) -> dict[str, Check]:
    """The checks of each family's keys: shared by its options, then the chosen option's."""
    out: dict[str, Check] = {}
    for group, registry in FAMILIES.items():
        section = OmegaConf.select(cfg, group, default=None)
        if section is None:
            continue
        checks: Mapping[str, Check] = dict(registry.checks)
        name = section.get("name")
        if name in registry:
            checks = {**checks, **registry.get(name).checks}
        out.update({f"{group}.{key}": check for key, check in checks.items()})
    return out


def check_config(cfg: DictConfig) -> None:
    """Raise a one-line DmlError for the first value out of its range."""
    for key, (check, allowed) in {**RULES, **family_rules(cfg)}.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT:
            continue
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value)
        if not _passes(check, value):
            raise DmlError(f"{key}={_shown(value)} is out of range: expected {allowed}")
    _check_relations(cfg)


def _passes(check: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(check(value))
    except TypeError:  # e.g. len() of a number
        return False


def _check_relations(cfg: DictConfig) -> None:
    get_task(cfg.task).check(cfg)
    a = cfg.autolr
    if a.threshold_floor > a.threshold:
        raise DmlError(
            f"autolr.threshold_floor={a.threshold_floor} is above autolr.threshold="
            f"{a.threshold}: expected floor <= threshold"
        )
    if a.lr_min > a.lr_max:
        raise DmlError(f"autolr.lr_min={a.lr_min} is above autolr.lr_max={a.lr_max}")
    p = cfg.pruning
    if list(p.units) and p.remove_last:
        raise DmlError(
            f"pruning.units={list(p.units)} and pruning.remove_last={p.remove_last}: set one "
            "of them (pruning.units=[] or pruning.remove_last=0 for the other)"
        )
    from dml.data.synthetic import max_classes

    if cfg.model.pretrained == "synthetic" and cfg.pretrain.num_classes > max_classes("source"):
        raise DmlError(
            f"pretrain.num_classes={cfg.pretrain.num_classes} is out of range: the synthetic "
            f"source domain has at most {max_classes('source')} classes"
        )


def check_data_counts(
    cfg: DictConfig,
    train_classes: int,
    train_images: int,
    test_images: int,
    gallery_images: int | None = None,
):
    """One-line errors for settings that the loaded splits cannot satisfy (gallery_images:
    the gallery the test queries are searched against, as In-Shop's)."""
    if train_classes < 2:
        raise DmlError(
            f"dataset {cfg.dataset.name}: the training split has {train_classes} class; "
            "training needs at least 2"
        )
    worst = max(cfg.eval.ks)
    searches = get_task(cfg.task).searches
    if searches and gallery_images is not None and worst > gallery_images:
        raise DmlError(
            f"eval.ks={list(cfg.eval.ks)}: k={worst} exceeds the {gallery_images} gallery "
            "images each query is searched against"
        )
    if searches and gallery_images is None and worst > test_images - 1:
        raise DmlError(
            f"eval.ks={list(cfg.eval.ks)}: k={worst} exceeds the {test_images - 1} neighbours "
            f"each query has ({test_images} test images)"
        )
    if cfg.trainer.batch_size > train_images:
        raise DmlError(
            f"trainer.batch_size={cfg.trainer.batch_size}: expected at most {train_images} "
            "(the training split's images)"
        )


def _shown(value: Any) -> str:
    return str(value).replace("'", "")
