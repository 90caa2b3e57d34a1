"""Dataclass schemas for every config group, registered in Hydra's ConfigStore.

Each YAML file in configs/<group>/ starts from one of these schemas, so a misspelt
key or a wrong type fails at compose time and names the key. A schema's defaults are those
of the group's default option in configs/train.yaml (tests/test_configs.py checks that they
match), so a config built from the dataclasses alone is the default run's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
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
    num_workers: int | None = None  # null: one per core but one (at most 8; 0 on 1-2 cores)
    cache: str = "none"  # none | ram (each image decoded and resized once, kept as uint8)
    # where training augmentation and normalisation run: auto (the device on CUDA with
    # cache=ram, else cpu) | cpu (loader processes) | device (dml.data.device)
    augment_on: str = "auto"
    ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # the benchmark's Recall@K


@dataclass
class SyntheticDatasetConfig(DatasetConfig):
    num_classes: int = 100
    images_per_class: int = 30
    generated_size: int = 64
    generator_seed: int = 0
    image_size: int = 64
    resize_size: int | None = 64  # generated tight: no crop margin (the YAML follows image_size)


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
    lr_mult: float = 10.0


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = 3e-3  # the twin's sgd_twin; the paper's sgd is 1e-3
    head_lr: float = 1e-2
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    # clear the optimizer's state (SGD momentum, AdamW moments) at the start of every epoch
    # and every re-run trial, whatever the LR policy (AutoLR's own: autolr.reset_momentum)
    reset_momentum: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class LRPolicyConfig:
    name: str = MISSING
    l_max: float = 3e-3  # the YAML options follow optimizer.lr


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
class ReplayPolicyConfig(LRPolicyConfig):
    run: str | None = None  # the finished run whose history[i]["lr"] is replayed


@dataclass
class LayerwisePolicyConfig(LRPolicyConfig):
    shape: str = "constant"  # the single-LR shape under the factors: constant | step | cosine
    drop_epoch: int = 30  # shape=step: x gamma from this epoch on
    gamma: float = 0.1
    l_min: float = 0.0  # shape=cosine: the LR it decays to


@dataclass
class LLRDPolicyConfig(LayerwisePolicyConfig):
    decay: float = 0.75  # unit k of K at decay^(K-k), stem decay^K


@dataclass
class GradualUnfreezePolicyConfig(LayerwisePolicyConfig):
    every: int = 1  # epochs between unfreezing one more unit (top unit first)


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
    mode: str = "rerun"  # rerun (the paper) | probe | online (see dml.policies.autolr)
    probe_fraction: float = 0.1  # probe/online: share of the epoch's steps between checks


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


SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {"dataset": DatasetConfig, "synthetic": SyntheticDatasetConfig},
    "model": {"model": ModelConfig},
    "pruning": {"pruning": PruningConfig},
    "loss": {
        "softmax": SoftmaxLossConfig,
        "triplet": TripletLossConfig,
        "proxy_anchor": ProxyAnchorLossConfig,
    },
    "optimizer": {"optimizer": OptimizerConfig},
    "lr_policy": {
        "constant": LRPolicyConfig,
        "step": StepPolicyConfig,
        "cyclic": CyclicPolicyConfig,
        "sgdr": SGDRPolicyConfig,
        "autolr": LRPolicyConfig,
        "llrd": LLRDPolicyConfig,
        "gradual_unfreeze": GradualUnfreezePolicyConfig,
        "autorgn": LayerwisePolicyConfig,
        "replay": ReplayPolicyConfig,
    },
    "autolr": {"autolr": AutoLRConfig},
    "trainer": {"trainer": TrainerConfig},
    "eval": {"eval": EvalConfig},
    "logger": {"logger": LoggerConfig},
    "pretrain": {"pretrain": PretrainConfig},
}


def _schema_of(group: str, section: Any) -> type | None:
    options = SCHEMAS[group]
    name = section.get("name") if hasattr(section, "get") else None
    if group == "dataset":
        return options["synthetic" if name == "synthetic" else "dataset"]
    return options.get(str(name)) or options.get(group)


def with_schema_defaults(config: dict[str, Any]) -> Any:
    """A saved run config (results.json) with keys added to the schemas since that run
    filled by their defaults (a key since removed keeps its section as it was)."""
    from omegaconf.errors import OmegaConfBaseException

    cfg = OmegaConf.create(config)
    for key in ("task", "seed", "resume"):
        if key not in cfg:
            cfg[key] = getattr(TrainConfig, key)
    for group in SCHEMAS:
        if group not in cfg or not OmegaConf.is_dict(cfg[group]):
            continue
        schema = _schema_of(group, cfg[group])
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
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    # in a group of their own, so they are not offered as choices of the groups they check;
    # a YAML option extends its schema with `- /schema/<group>/<name>@_here_`
    for group, nodes in SCHEMAS.items():
        for name, node in nodes.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


register_configs()
register_resolvers()
