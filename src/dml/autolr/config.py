"""The autolr config group's schema: AutoLR's hyper-parameters and guards (spec sections 5-8)."""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("rerun", "probe", "online")  # how trials are run: dml.policies.autolr


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
