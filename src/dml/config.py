"""Dataclass schemas for every config group, registered in Hydra's ConfigStore.

Each YAML file in configs/<group>/ starts from a schema, so a misspelt key or a wrong type
fails at compose time and names the key. The swappable families (dataset, loss, lr_policy)
take their schemas from their registries (dml.registry): each option's entry holds the schema
its YAML extends. The other groups' schemas are here, or beside the code they configure
(autolr, optimizer). A value is written once: in the schema, or in an option's YAML where the
option differs from the schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from dml.autolr.config import AutoLRConfig
from dml.data import DATASETS
from dml.losses import LOSSES
from dml.policies import POLICIES
from dml.registry import Registry
from dml.training.optim import OptimizerConfig


@dataclass
class ModelConfig:
    arch: str = MISSING
    pretrained: str = "synthetic"
    embedding_dim: int = 128
    last_stride: int = 2
    pooling: str = "avg"
    weights: str = "IMAGENET1K_V1"  # torchvision ImageNet weights for pretrained=imagenet
    head: str = "linear"  # linear | paper (Linear -> BN -> LeakyReLU(0.1) -> Dropout(0.5))
    freeze_bn: bool = False  # BatchNorm layers of the backbone kept in eval mode, not trained


@dataclass
class PretrainConfig:
    """Synthetic source-domain pre-training (the offline stand-in for ImageNet weights)."""

    num_classes: int = 48
    images_per_class: int = 50
    # 15 took 175 s of a 305 s first run here (96.7% train accuracy; 12: 85.7%, pooled
    # R@1 before fine-tuning 64.1 -> 56.8); 13 keeps the first run under 300 s
    epochs: int = 13
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0


@dataclass
class PruningConfig:
    """Trailing units to remove: explicit 1-based ids, or a count from the end."""

    units: list[int] = field(default_factory=list)
    remove_last: int = 1


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 40
    samples_per_class: int = 4
    device: str = "auto"
    log_every: int = 10
    max_steps_per_epoch: int = 0
    save_checkpoints: bool = True
    save_epoch_weights: bool = False  # weights/first_trial.pt and weights/epoch_<E>.pt (CAM)
    freeze: list[str] = field(default_factory=list)
    warmup_epochs: int = 0  # first epochs train only the head and the loss's parameters
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast forward and loss; fp16 scales grads)
    channels_last: bool = False  # model and batches in channels_last memory format
    sync_bn: bool = False  # under torchrun: BatchNorm statistics over the global batch
    cudnn_benchmark: bool = True  # CUDA: cuDNN picks the fastest convolution per shape


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    batch_size: int = 128
    flip: bool = False
    map_at_r: bool = True
    feature: str = "embedding"  # embedding (head output) | pooled (backbone pooled features)
    selection: str = "val"  # val (held-out training classes) | test (the paper's protocol)
    val_classes: float = 0.2  # share of the training classes held out when selection=val
    val_images: float = 0.1  # task=classification: share of each class's images held out


@dataclass
class LoggerConfig:
    tensorboard: bool = True
    progress: bool = True


@dataclass
class TrainConfig:
    dataset: Any = MISSING
    model: Any = MISSING
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    loss: Any = MISSING
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    lr_policy: Any = MISSING
    autolr: AutoLRConfig = field(default_factory=AutoLRConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    task: str = "retrieval"  # retrieval (unseen test classes) | classification (top-1)
    seed: int = 0
    data_dir: str = MISSING
    run_name: str = "default"
    resume: str | None = None  # a run folder to continue (python train.py resume=<dir>)


#: the groups whose options are registered parts: each option's entry holds its schema
FAMILIES: dict[str, Registry] = {"dataset": DATASETS, "loss": LOSSES, "lr_policy": POLICIES}
#: the other groups: one schema each, whatever the option
FIXED: dict[str, type] = {
    "model": ModelConfig,
    "pruning": PruningConfig,
    "optimizer": OptimizerConfig,
    "autolr": AutoLRConfig,
    "trainer": TrainerConfig,
    "eval": EvalConfig,
    "logger": LoggerConfig,
    "pretrain": PretrainConfig,
}


def group_schema(group: str, section: Any) -> type | None:
    """The schema of a config group's section (a family's by the option it names)."""
    if group in FAMILIES:
        name = section.get("name") if hasattr(section, "get") else None
        registry = FAMILIES[group]
        return registry.get(name).schema if name in registry else None
    return FIXED.get(group)


def with_schema_defaults(config: dict[str, Any]) -> Any:
    """A saved run config (results.json) with keys added to the schemas since that run
    filled by their defaults (a key since removed keeps its section as it was)."""
    from omegaconf.errors import OmegaConfBaseException

    cfg = OmegaConf.create(config)
    for key in ("task", "seed", "resume"):
        if key not in cfg:
            cfg[key] = getattr(TrainConfig, key)
    for group in (*FAMILIES, *FIXED):
        if group not in cfg or not OmegaConf.is_dict(cfg[group]):
            continue
        schema = group_schema(group, cfg[group])
        if schema is None:
            continue
        try:
            merged = OmegaConf.merge(OmegaConf.structured(schema), cfg[group])
        except OmegaConfBaseException:
            continue
        cfg[group] = OmegaConf.to_container(merged)
    return cfg


def paper_epoch(epoch: int, epochs: int, recipe_epochs: int = 50) -> int:
    """An epoch of a paper recipe (e.g. t_d 30 of 50) scaled to a run of `epochs` epochs (>= 1)."""
    return max(1, round(int(epoch) * int(epochs) / int(recipe_epochs)))


def unique_dir(path: str) -> str:
    """path, or path_1, path_2, ...: the first that did not exist, created here to claim it.

    mkdir is atomic, so two runs started in the same second get different folders.
    """
    base = Path(path)
    candidate, n = base, 0
    while True:
        try:
            candidate.mkdir(parents=True)
            return str(candidate)
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}_{n}")


def register_resolvers() -> None:
    """`${paper_epoch:30,${trainer.epochs}}`: recipe epochs that follow the run's length;
    `${unique_dir:<path>}`: a run folder no other run has (cached: resolved once per config)."""
    OmegaConf.register_new_resolver("paper_epoch", paper_epoch, replace=True)
    OmegaConf.register_new_resolver("unique_dir", unique_dir, replace=True, use_cache=True)


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent: call it again after registering
    a part, as a test's toy part does)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    # in a group of their own, so they are not offered as choices of the groups they check;
    # a YAML option extends its schema with `- /schema/<group>/<name>@_here_`
    for group, schema in FIXED.items():
        cs.store(group=f"schema/{group}", name=group, node=schema)
    for group, registry in FAMILIES.items():
        for name, entry in registry.items():
            cs.store(group=f"schema/{group}", name=name, node=entry.schema)


register_configs()
register_resolvers()
