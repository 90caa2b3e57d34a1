"""Optimizer parameter groups: one per backbone unit, plus stem, head and loss (pure builder)."""

from __future__ import annotations

from torch import nn

from dml.errors import DmlError
from dml.models.embedding import EmbeddingNet
from dml.policies.base import GroupInfo  # what the policies are told about each group


def build_param_groups(
    model: EmbeddingNet, loss: nn.Module, lr: float, head_lr: float, loss_lr_mult: float = 1.0
) -> tuple[list[dict], list[GroupInfo]]:
    """Param-group dicts (with 'name' and 'initial_lr') and their descriptions, in a fixed order.

    Order: stem, unit1..unitK, head, then loss (only if the loss has parameters).
    """
    specs: list[tuple[GroupInfo, list[nn.Parameter], float]] = [
        (GroupInfo("stem", "stem"), list(model.backbone.stem.parameters()), lr)
    ]
    for k, unit in enumerate(model.backbone.units):
        specs.append((GroupInfo(f"unit{k + 1}", "unit", k), list(unit.parameters()), lr))
    # a ViT's final LayerNorm (the backbone's neck) normalises what the head reads: it trains
    # with the head, whichever unit is last after pruning
    head = [*model.backbone.neck.parameters(), *model.head.parameters()]
    specs.append((GroupInfo("head", "head"), head, head_lr))
    loss_params = [p for p in loss.parameters() if p.requires_grad]
    if loss_params:
        specs.append((GroupInfo("loss", "loss"), loss_params, head_lr * loss_lr_mult))
    groups = [
        {"params": params, "lr": group_lr, "initial_lr": group_lr, "name": info.name}
        for info, params, group_lr in specs
    ]
    return groups, [info for info, _, _ in specs]


def freeze_groups(groups: list[dict], names: list[str]) -> None:
    """Stop gradients to the named param groups (e.g. stem, unit1); their weights stay put."""
    known = [g["name"] for g in groups]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DmlError(f"trainer.freeze names unknown group(s) {unknown}: expected some of {known}")
    for group in groups:
        if group["name"] in names:
            for param in group["params"]:
                param.requires_grad_(False)
