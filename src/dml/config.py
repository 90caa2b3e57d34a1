"""Dataclass schemas for every config group, registered in Hydra's ConfigStore.

Each YAML file in configs/<group>/ starts from one of these schemas, so a misspelt
key or a wrong type fails at compose time and names the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


@dataclass
class DatasetConfig:
    name: str = MISSING
    root: str = MISSING
    image_size: int = 224
    resize_size: int | None = None  # None: round(image_size * 256 / 224)
    eval_resize: str = "shorter"  # square: Resize((r, r)); shorter: shorter side to r
    interpolation: str = "bilinear"  # bilinear | bicubic (train and eval resizes)
    hflip: bool = True
    random_resized_crop: bool = False
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # RandomResizedCrop
    color_jitter: float = 0.0
    num_workers: int = 0


@dataclass
class SyntheticDatasetConfig(DatasetConfig):
    num_classes: int = 100
    images_per_class: int = 30
    generated_size: int = 64
    generator_seed: int = 0


@dataclass
class ModelConfig:
    arch: str = MISSING
    pretrained: str = "none"
    embedding_dim: int = 512
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
    epochs: int = 15
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0


@dataclass
class PruningConfig:
    """Trailing units to remove: explicit 1-based ids, or a count from the end."""

    units: list[int] = field(default_factory=list)
    remove_last: int = 0


@dataclass
class LossConfig:
    name: str = MISSING
    lr_mult: float = 1.0


@dataclass
class SoftmaxLossConfig(LossConfig):
    temperature: float = 1.0
    classifier_std: float | None = None  # N(0, std) init of the classifier; None: default


@dataclass
class TripletLossConfig(LossConfig):
    margin: float = 0.1
    miner: str = "semihard"


@dataclass
class ProxyAnchorLossConfig(LossConfig):
    margin: float = 0.1
    alpha: float = 32.0


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = 1e-3
    head_lr: float = 1e-2
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class LRPolicyConfig:
    name: str = MISSING
    l_max: float = 1e-3


@dataclass
class StepPolicyConfig(LRPolicyConfig):
    drop_epoch: int = 30
    gamma: float = 0.1
    every: int = 0  # > 0: multiply by gamma every `every` epochs (drop_epoch unused)


@dataclass
class CyclicPolicyConfig(LRPolicyConfig):
    l_min: float = 1e-4
    cycles: int = 3


@dataclass
class SGDRPolicyConfig(LRPolicyConfig):
    l_min: float = 1e-4
    resets: int = 2


@dataclass
class AutoLRConfig:
    alpha: float = 2.0
    beta: float = 0.4
    threshold: float = 0.94
    threshold_decay: float = 0.99
    threshold_floor: float = 0.8
    max_trials: int = 5
    stem_factor: float = 0.5
    head_lr: float = 1e-2
    drop_epoch: int = 30
    drop_factor: float = 0.2
    lr_min: float = 1e-6
    lr_max: float = 1.0
    reset_momentum: bool = True


@dataclass
class TrainerConfig:
    epochs: int = 40
    batch_size: int = 40
    samples_per_class: int = 0
    device: str = "auto"
    log_every: int = 10
    max_steps_per_epoch: int = 0
    save_checkpoints: bool = True
    freeze: list[str] = field(default_factory=list)
    warmup_epochs: int = 0  # first epochs train only the head and the loss's parameters


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    batch_size: int = 128
    flip: bool = False
    map_at_r: bool = True
    feature: str = "embedding"  # embedding (head output) | pooled (backbone pooled features)
    selection: str = "test"  # test (the paper's protocol) | val (held-out training classes)
    val_classes: float = 0.2  # share of the training classes held out when selection=val


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
    seed: int = 0
    data_dir: str = MISSING
    run_name: str = "default"


SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {"base_dataset": DatasetConfig, "base_synthetic": SyntheticDatasetConfig},
    "model": {"base_model": ModelConfig},
    "pruning": {"base_pruning": PruningConfig},
    "loss": {
        "base_softmax": SoftmaxLossConfig,
        "base_triplet": TripletLossConfig,
        "base_proxy_anchor": ProxyAnchorLossConfig,
    },
    "optimizer": {"base_optimizer": OptimizerConfig},
    "lr_policy": {
        "base_constant": LRPolicyConfig,
        "base_step": StepPolicyConfig,
        "base_cyclic": CyclicPolicyConfig,
        "base_sgdr": SGDRPolicyConfig,
        "base_autolr": LRPolicyConfig,
    },
    "autolr": {"base_autolr": AutoLRConfig},
    "trainer": {"base_trainer": TrainerConfig},
    "eval": {"base_eval": EvalConfig},
    "logger": {"base_logger": LoggerConfig},
    "pretrain": {"base_pretrain": PretrainConfig},
}


def paper_epoch(epoch: int, epochs: int, recipe_epochs: int = 50) -> int:
    """An epoch of a paper recipe (e.g. t_d 30 of 50) scaled to a run of `epochs` epochs (>= 1)."""
    return max(1, round(int(epoch) * int(epochs) / int(recipe_epochs)))


def register_resolvers() -> None:
    """`${paper_epoch:30,${trainer.epochs}}`: recipe epochs that follow the run's length."""
    OmegaConf.register_new_resolver("paper_epoch", paper_epoch, replace=True)


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for group, nodes in SCHEMAS.items():
        for name, node in nodes.items():
            cs.store(group=group, name=name, node=node)


register_configs()
register_resolvers()
