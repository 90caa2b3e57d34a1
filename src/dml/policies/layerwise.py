"""Per-layer LR baselines beside AutoLR, over the same stem / unit param groups.

Each is a single-LR schedule shape (`lr_policy.shape`: constant, step or cosine, as pure
functions of epoch time like dml.policies.schedules) times one factor per group:

* ``llrd``, layer-wise LR decay (BEiT, Bao et al., ICLR 2022; ConvNeXt and MAE fine-tuning;
  ULMFiT's discriminative fine-tuning, Howard & Ruder, ACL 2018, is the same family with
  decay 1/2.6): unit k of K (1 = lowest) gets decay^(K-k), the stem decay^K.
* ``gradual_unfreeze`` (ULMFiT, Howard & Ruder, ACL 2018): the top unit trains first, one
  more unit below is unfrozen every `lr_policy.every` epochs, the stem after unit 1. A
  frozen group's LR is 0 (no update, no weight decay: the optimizers here scale both by
  the LR) and its optimizer state starts afresh when it is unfrozen.
* ``autorgn``, Auto-RGN of Surgical Fine-Tuning (Lee et al., ICLR 2023): every step, after
  the backward pass, each stem / unit group's relative gradient norm ||g|| / ||w|| divided
  by the largest of them; a group's LR is the shape's LR times that.

Head and loss groups follow the shape at their configured ratio (factor 1), as in
dml.policies.schedules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from dml.policies.base import POLICIES, LRPolicyConfig, PolicyContext
from dml.policies.schedules import (
    BACKBONE_KINDS,
    Schedule,
    SchedulePolicy,
    cosine_restarts,
    step_decay,
)
from dml.predicates import NON_NEGATIVE, POSITIVE, choice, integer_at_least, unit_interval


# -- the rules, over plain numbers --------------------------------------------------------
def layer_decay_factors(kinds: Sequence[str], decay: float) -> list[float]:
    """llrd: unit k of K (in group order, 1 = lowest) decay^(K-k), stem decay^K, others 1."""
    units = sum(kind == "unit" for kind in kinds)
    out, k = [], 0
    for kind in kinds:
        if kind == "unit":
            k += 1
            out.append(decay ** (units - k))
        else:
            out.append(decay**units if kind == "stem" else 1.0)
    return out


def unfrozen_mask(kinds: Sequence[str], epoch: int, every: int) -> list[bool]:
    """gradual_unfreeze: at `epoch`, the top 1 + epoch // every backbone groups train
    (units from the top down, the stem last); head and loss always train."""
    backbone = [i for i, kind in enumerate(kinds) if kind in BACKBONE_KINDS]
    training = 1 + epoch // every
    top = set(backbone[::-1][:training])  # stem is the first backbone group, so it comes last
    return [kind not in BACKBONE_KINDS or i in top for i, kind in enumerate(kinds)]


def rgn_factors(grad_norms: Sequence[float], weight_norms: Sequence[float]) -> list[float]:
    """Auto-RGN: each ||g|| / ||w|| over the largest of them (all 1 if no group has a grad)."""
    rgn = [g / w if w > 0 else 0.0 for g, w in zip(grad_norms, weight_norms)]
    top = max(rgn, default=0.0)
    if not math.isfinite(top) or top <= 0:
        return [1.0] * len(rgn)
    return [r / top for r in rgn]


# -- the policies -------------------------------------------------------------------------
class LayerwisePolicy(SchedulePolicy):
    """A shape's LR times one factor per group (factors() gives them at the epoch)."""

    def factors(self, epoch: int) -> list[float]:
        """One factor per optimizer group."""
        return [1.0] * len(self.ctx.groups)

    def lrs_at(self, t: float) -> list[float]:
        """The shape's LR of each group times the group's factor."""
        return [lr * f for lr, f in zip(super().lrs_at(t), self.factors(math.floor(t)))]

    def report(self) -> dict:
        """The factor of each group at the start of every epoch."""
        names = [info.name for info in self.ctx.groups]
        return {
            "layerwise": {
                "policy": self.name,
                "factors": [dict(zip(names, self.factors(e))) for e in range(self.ctx.epochs)],
            }
        }


class LayerDecayPolicy(LayerwisePolicy):
    """llrd: unit k of K at decay^(K-k) of the shape's LR, stem at decay^K."""

    def __init__(self, l_max: float, fn: Schedule, decay: float) -> None:
        super().__init__("llrd", l_max, fn)
        self.decay = decay

    def factors(self, epoch: int) -> list[float]:
        return layer_decay_factors([info.kind for info in self.ctx.groups], self.decay)


class GradualUnfreezePolicy(LayerwisePolicy):
    """gradual_unfreeze: frozen backbone groups at LR 0, one more unfrozen every `every` epochs."""

    def __init__(self, l_max: float, fn: Schedule, every: int) -> None:
        super().__init__("gradual_unfreeze", l_max, fn)
        self.every = every

    def factors(self, epoch: int) -> list[float]:
        mask = unfrozen_mask([info.kind for info in self.ctx.groups], epoch, self.every)
        return [1.0 if on else 0.0 for on in mask]

    def begin_epoch(self, epoch: int) -> None:
        """Groups unfrozen at this epoch start with no momentum or moment estimates."""
        if epoch > 0:
            before, now = self.factors(epoch - 1), self.factors(epoch)
            for group, was, is_on in zip(self.ctx.optimizer.param_groups, before, now):
                if is_on and not was:
                    for param in group["params"]:
                        self.ctx.optimizer.state.pop(param, None)
        super().begin_epoch(epoch)


class AutoRGNPolicy(LayerwisePolicy):
    """autorgn: each stem / unit group's LR scaled every step by its normalised ||g|| / ||w||."""

    def __init__(self, l_max: float, fn: Schedule) -> None:
        super().__init__("autorgn", l_max, fn)
        self._t = 0.0
        self._last: list[float] | None = None

    def setup(self, ctx: PolicyContext) -> None:
        super().setup(ctx)
        self._backbone = [i for i, info in enumerate(ctx.groups) if info.kind in BACKBONE_KINDS]

    def factors(self, epoch: int) -> list[float]:
        return self._last or [1.0] * len(self.ctx.groups)

    def step(self, epoch: int, step: int) -> None:
        """Remember the step's time; the LRs are set once its gradients exist."""
        self._t = epoch + step / max(1, self.ctx.steps_per_epoch)

    def before_update(self, epoch: int, step: int) -> None:
        """Auto-RGN from this step's gradients (a GradScaler's scale cancels in the ratio)."""
        groups = self.ctx.optimizer.param_groups
        norms = torch.stack([_norms(groups[i]["params"]) for i in self._backbone])
        pairs = norms.tolist()  # one host sync per step, the rule's cost
        scale = rgn_factors([g for g, _ in pairs], [w for _, w in pairs])
        if not all(math.isfinite(s) for s in scale):
            return  # an fp16 overflow step, which the scaler skips: keep the last LRs
        factors = [1.0] * len(groups)
        for i, s in zip(self._backbone, scale):
            factors[i] = s
        self._last = factors
        self.set_lrs(self.lrs_at(self._t))

    def report(self) -> dict:
        return {}  # its factors change every step; TensorBoard's lr/* curves hold them

    def state_dict(self) -> dict:
        return {"last": self._last}

    def load_state_dict(self, state: dict) -> None:
        self._last = state.get("last")


def _norms(params: list[torch.Tensor]) -> torch.Tensor:
    """(||g||, ||w||) over the params (on their device; grads that are None count 0)."""
    grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    g = torch.stack(grads).norm() if grads else torch.zeros((), device=params[0].device)
    w = torch.stack([p.detach().float().norm() for p in params]).norm()
    return torch.stack([g, w])


# lr_policy.shape -> the single-LR shape over l_max (its keys read from the group)
SHAPES: dict[str, Callable[[Any], Schedule]] = {
    "constant": lambda cfg: lambda t, total: float(cfg.l_max),
    "step": lambda cfg: (
        lambda t, total: step_decay(t, float(cfg.l_max), int(cfg.drop_epoch), float(cfg.gamma))
    ),
    "cosine": lambda cfg: (
        lambda t, total: cosine_restarts(t, total, float(cfg.l_max), float(cfg.l_min), 0)
    ),
}


def shape_fn(cfg) -> Schedule:
    """The single-LR shape lr_policy.shape names, over lr_policy.l_max."""
    return SHAPES[cfg.shape](cfg)


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


SHAPE_CHECKS = {
    "shape": choice(SHAPES),
    "drop_epoch": integer_at_least(0),
    "gamma": POSITIVE,
    "l_min": NON_NEGATIVE,
}


@POLICIES.register(
    "llrd", LLRDPolicyConfig, checks={**SHAPE_CHECKS, "decay": (unit_interval, "0 < decay <= 1")}
)
def build_llrd(cfg) -> LayerDecayPolicy:
    """Layer-wise LR decay under the configured shape."""
    return LayerDecayPolicy(float(cfg.l_max), shape_fn(cfg), float(cfg.decay))


@POLICIES.register(
    "gradual_unfreeze",
    GradualUnfreezePolicyConfig,
    checks={**SHAPE_CHECKS, "every": integer_at_least(1)},
)
def build_gradual_unfreeze(cfg) -> GradualUnfreezePolicy:
    """Gradual unfreezing, one more unit every `every` epochs."""
    return GradualUnfreezePolicy(float(cfg.l_max), shape_fn(cfg), int(cfg.every))


@POLICIES.register("autorgn", LayerwisePolicyConfig, checks=SHAPE_CHECKS)
def build_autorgn(cfg) -> AutoRGNPolicy:
    """Auto-RGN under the configured shape."""
    return AutoRGNPolicy(float(cfg.l_max), shape_fn(cfg))
