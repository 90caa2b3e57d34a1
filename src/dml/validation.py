"""Range checks of a composed config, run at start-up before anything is built.

The schemas (dml.config) check types; these check values. Each failure is one line naming
the key, the value and what is allowed. Checks that need the data (a k against the test
set, a batch against the training split) run where the data is loaded and say which count
they compared with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dml.errors import DmlError

TASKS = ("retrieval", "classification")

_ABSENT = object()


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def positive(x: Any) -> bool:
    """A finite number > 0."""
    return _num(x) and x > 0


def non_negative(x: Any) -> bool:
    """A finite number >= 0."""
    return _num(x) and x >= 0


def at_least(n: int) -> Callable[[Any], bool]:
    """An integer >= n."""
    return lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= n


def unit_interval(x: Any) -> bool:
    """A number in (0, 1]."""
    return _num(x) and 0 < x <= 1


def one_of(*choices: Any) -> Callable[[Any], bool]:
    """One of the given values."""
    return lambda x: x in choices


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """None, or a value passing check."""
    return lambda x: x is None or check(x)


# key -> (check, what is allowed); keys absent from a config (another option's) are skipped
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (at_least(0), "an integer >= 0"),
    "task": (one_of(*TASKS), "retrieval or classification"),
    "trainer.epochs": (at_least(1), "an integer >= 1"),
    "trainer.batch_size": (at_least(2), "an integer >= 2"),
    "trainer.samples_per_class": (lambda x: x == 0 or at_least(2)(x), "0 or an integer >= 2"),
    "trainer.log_every": (at_least(1), "an integer >= 1"),
    "trainer.max_steps_per_epoch": (at_least(0), "an integer >= 0 (0: the whole epoch)"),
    "trainer.warmup_epochs": (at_least(0), "an integer >= 0"),
    "trainer.precision": (one_of("fp32", "bf16", "fp16"), "fp32, bf16 or fp16"),
    "optimizer.lr": (positive, "a number > 0"),
    "optimizer.head_lr": (positive, "a number > 0"),
    "optimizer.weight_decay": (non_negative, "a number >= 0"),
    "optimizer.momentum": (lambda x: _num(x) and 0 <= x < 1, "a number in [0, 1)"),
    "optimizer.betas": (
        lambda b: len(b) == 2 and all(_num(x) and 0 <= x < 1 for x in b),
        "two numbers in [0, 1)",
    ),
    "lr_policy.l_max": (positive, "a number > 0"),
    "lr_policy.l_min": (non_negative, "a number >= 0"),
    "lr_policy.drop_epoch": (at_least(0), "an integer >= 0"),
    "lr_policy.gamma": (positive, "a number > 0"),
    "lr_policy.every": (at_least(0), "an integer >= 0 (0: one drop at drop_epoch)"),
    "lr_policy.cycles": (at_least(1), "an integer >= 1"),
    "lr_policy.resets": (at_least(0), "an integer >= 0"),
    "autolr.alpha": (positive, "a number > 0"),
    "autolr.beta": (positive, "a number > 0"),
    "autolr.threshold": (unit_interval, "a number in (0, 1]"),
    "autolr.threshold_decay": (unit_interval, "a number in (0, 1]"),
    "autolr.threshold_floor": (unit_interval, "a number in (0, 1]"),
    "autolr.max_trials": (at_least(1), "an integer >= 1"),
    "autolr.stem_factor": (non_negative, "a number >= 0"),
    "autolr.head_lr": (positive, "a number > 0"),
    "autolr.drop_epoch": (at_least(0), "an integer >= 0"),
    "autolr.drop_factor": (positive, "a number > 0"),
    "autolr.lr_min": (positive, "a number > 0"),
    "autolr.lr_max": (positive, "a number > 0"),
    "autolr.mode": (one_of("rerun", "probe", "online"), "rerun, probe or online"),
    "autolr.probe_fraction": (unit_interval, "a number in (0, 1]"),
    "dataset.image_size": (at_least(1), "an integer >= 1"),
    "dataset.resize_size": (optional(at_least(1)), "null or an integer >= 1"),
    "dataset.num_workers": (optional(at_least(0)), "null (chosen from the cores) or >= 0"),
    "dataset.color_jitter": (non_negative, "a number >= 0"),
    "dataset.crop_scale": (
        lambda s: len(s) == 2 and _num(s[0]) and _num(s[1]) and 0 < s[0] <= s[1] <= 1,
        "[low, high] with 0 < low <= high <= 1",
    ),
    "dataset.eval_resize": (one_of("shorter", "square"), "shorter or square"),
    "dataset.cache": (one_of("none", "ram"), "none or ram"),
    "dataset.augment_on": (one_of("auto", "cpu", "device"), "auto, cpu or device"),
    "dataset.interpolation": (one_of("bilinear", "bicubic"), "bilinear or bicubic"),
    "dataset.images_per_class": (at_least(2), "an integer >= 2"),
    "dataset.num_classes": (at_least(4), "an integer >= 4 (half train, half test)"),
    "model.embedding_dim": (at_least(1), "an integer >= 1"),
    "model.last_stride": (one_of(1, 2), "1 or 2"),
    "model.pooling": (one_of("avg", "max", "avgmax", "cls"), "avg, max, avgmax or cls (ViT)"),
    "model.head": (one_of("linear", "paper"), "linear or paper"),
    "pruning.remove_last": (at_least(0), "an integer >= 0"),
    "pruning.units": (lambda u: all(at_least(1)(k) for k in u), "unit ids >= 1"),
    "loss.lr_mult": (positive, "a number > 0"),
    "loss.margin": (non_negative, "a number >= 0"),
    "loss.alpha": (positive, "a number > 0"),
    "loss.temperature": (positive, "a number > 0"),
    "loss.classifier_std": (optional(positive), "null or a number > 0"),
    "eval.ks": (lambda ks: len(ks) > 0 and all(at_least(1)(k) for k in ks), "integers >= 1"),
    "eval.batch_size": (at_least(1), "an integer >= 1"),
    "eval.val_classes": (lambda x: _num(x) and 0 < x < 1, "a share strictly between 0 and 1"),
    "eval.val_images": (lambda x: _num(x) and 0 < x < 1, "a share strictly between 0 and 1"),
    "pretrain.epochs": (at_least(1), "an integer >= 1"),
    "pretrain.batch_size": (at_least(2), "an integer >= 2"),
    "pretrain.lr": (positive, "a number > 0"),
    "pretrain.num_classes": (at_least(2), "an integer >= 2"),
    "pretrain.images_per_class": (at_least(1), "an integer >= 1"),
}


def check_config(cfg: DictConfig) -> None:
    """Raise a one-line DmlError for the first value out of its range."""
    for key, (check, allowed) in RULES.items():
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
    if cfg.task == "classification" and cfg.loss.name != "softmax":
        raise DmlError(
            f"task=classification with loss={cfg.loss.name}: classification trains and "
            "scores the softmax classifier; expected loss=softmax"
        )
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

    if cfg.dataset.name == "synthetic" and cfg.dataset.num_classes > max_classes("target"):
        raise DmlError(
            f"dataset.num_classes={cfg.dataset.num_classes} is out of range: the synthetic "
            f"generator draws at most {max_classes('target')} distinct classes"
        )
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
    if cfg.task == "retrieval" and gallery_images is not None and worst > gallery_images:
        raise DmlError(
            f"eval.ks={list(cfg.eval.ks)}: k={worst} exceeds the {gallery_images} gallery "
            "images each query is searched against"
        )
    if cfg.task == "retrieval" and gallery_images is None and worst > test_images - 1:
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
