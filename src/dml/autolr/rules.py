"""Pure AutoLR rules: sorting score, target variations and the LR update.

Plain numbers in, plain lists of floats out; no torch, no clamping. The formulas are
those of the AutoLR spec (``autolr-spec.md``, sections 4-6). Keeping LRs and targets
positive and finite, and leaving zero-variation units out, is the controller's job
(spec section 8): these functions report what the paper's rules say, even when
that is a negative target.
"""

from __future__ import annotations

from collections.abc import Sequence

from dml.errors import InfeasibleError

__all__ = [
    "InfeasibleBoundsError",
    "initial_targets",
    "repaired_targets",
    "sorting_score",
    "updated_lrs",
]


class InfeasibleBoundsError(InfeasibleError, ValueError):
    """The first-epoch bounds cross (alpha*min(v0) >= beta*max(v0)): no target line exists."""


def _floats(values: Sequence[float], name: str) -> list[float]:
    """Copy a non-empty sequence into a list of floats, refusing empty input."""
    out = [float(x) for x in values]
    if not out:
        raise ValueError(f"{name} is empty: AutoLR needs at least one unit")
    return out


def sorting_score(v: Sequence[float]) -> float:
    """Sorting quality of v (spec section 4): 1.0 when ascending, near 0 when reversed."""
    vals = _floats(v, "v")
    k = len(vals)
    # Stable sort: tied units keep their forward order, so ties never cost score.
    order = sorted(range(k), key=vals.__getitem__)
    displacement = sum(abs(i - pos) for i, pos in enumerate(order))
    return 1.0 - 2.0 * displacement / k**2


def initial_targets(v0: Sequence[float], alpha: float, beta: float) -> list[float]:
    """First-epoch targets (spec section 5): the line from alpha*min(v0) to beta*max(v0).

    With K = 1 there is no line; the formula's first point t_1 = lower is returned
    (the (k - 1) factor is 0, so this is what the formula gives for unit 1 at any K).
    The bounds are checked first for every K: lower >= upper raises
    InfeasibleBoundsError (a ValueError and a dml InfeasibleError) naming both bounds.
    """
    vals = _floats(v0, "v0")
    lower = alpha * min(vals)
    upper = beta * max(vals)
    if lower >= upper:
        raise InfeasibleBoundsError(
            f"infeasible AutoLR bounds: lower alpha*min(v0) = {lower:.4g} >= "
            f"upper beta*max(v0) = {upper:.4g} (alpha={alpha}, beta={beta})"
        )
    k = len(vals)
    if k == 1:
        return [lower]
    step = (upper - lower) / (k - 1)
    return [lower + i * step for i in range(k)]


def repaired_targets(v: Sequence[float]) -> list[float]:
    """Later-epoch targets (spec section 5): repair v into ascending order from the middle out.

    step = (max v - min v) / (K - 1) and c = K // 2 (0-based). Walking down from c, a unit
    above its upper neighbour (t[i-1] > t[i]) is set to t[i] - step; walking up from c, a
    unit below its lower neighbour (t[i+1] < t[i]) is set to t[i] + step. The result is
    non-decreasing and may be negative. K = 1 returns a copy.
    """
    t = _floats(v, "v")
    k = len(t)
    if k == 1:
        return t
    step = (max(t) - min(t)) / (k - 1)
    c = k // 2
    # Each comparison uses the already-repaired neighbour, so a fix cascades outwards.
    for i in range(c, 0, -1):
        if t[i] < t[i - 1]:
            t[i - 1] = t[i] - step
    for i in range(c, k - 1):
        if t[i] > t[i + 1]:
            t[i + 1] = t[i] + step
    return t


def updated_lrs(lrs: Sequence[float], v: Sequence[float], targets: Sequence[float]) -> list[float]:
    """LR update of paper Eq. 16 (spec section 6): lr_new = lr + (t - v) / (v / lr) = lr * t / v."""
    lr_vals = [float(x) for x in lrs]
    v_vals = [float(x) for x in v]
    t_vals = [float(x) for x in targets]
    if not len(lr_vals) == len(v_vals) == len(t_vals):
        raise ValueError(
            f"length mismatch: {len(lr_vals)} LRs, {len(v_vals)} variations, "
            f"{len(t_vals)} targets (need one of each per unit)"
        )
    for i, vi in enumerate(v_vals):
        if vi == 0.0:
            raise ValueError(
                f"unit index {i} (unit {i + 1}) has zero weight variation: Eq. 16 divides "
                "by it; exclude zero-variation units before updating"
            )
    # The simplified form lr * t / v also stays defined for lr == 0 (Eq. 16 as
    # written divides by v / lr).
    return [lr * t / vi for lr, vi, t in zip(lr_vals, v_vals, t_vals, strict=True)]
