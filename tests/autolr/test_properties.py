"""Property tests of the pure AutoLR rules (hypothesis).

Facts used below, derived by hand:
- The largest total displacement sum_i |i - order[i]| of a permutation of K items is
  floor(K^2 / 2), reached by the reversal. So score = 1 - 2 * sum / K^2 lies in [0, 1]:
  a strictly decreasing v scores exactly 0 for even K and 1/K^2 for odd K
  (K = 1: 1.0, K = 3: 1/9, K = 5: 1/25), and no v scores lower than that.
- If v is linear in the LR (v = c * lr), Eq. 16 gives lr' = lr * t / v = t / c, so a second
  measurement at lr' reads c * lr' = t: the update lands on the target in one step.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from dml.autolr import initial_targets, repaired_targets, sorting_score, updated_lrs
from dml.autolr.rules import InfeasibleBoundsError

# database=None: no .hypothesis folder in the working tree
SETTINGS = settings(max_examples=150, deadline=None, database=None)

# realistic magnitudes: variations ~1e-12..1e2, LRs ~1e-8..1, so products stay finite
positive = st.floats(min_value=1e-12, max_value=1e2, allow_nan=False, allow_infinity=False)
lr_values = st.floats(min_value=1e-8, max_value=1.0, allow_nan=False, allow_infinity=False)
finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
units = st.integers(min_value=1, max_value=20)


@SETTINGS
@given(st.lists(finite, min_size=1, max_size=20))
def test_score_in_unit_interval_and_not_below_reversal(v: list[float]) -> None:
    """Catches a normaliser that lets the score leave [0, 1] (e.g. K(K-1) or a missing 2)."""
    k = len(v)
    score = sorting_score(v)
    floor_score = 0.0 if k % 2 == 0 else 1.0 / k**2  # the reversal's score, see module doc
    assert math.isfinite(score)
    assert floor_score - 1e-12 <= score <= 1.0


@SETTINGS
@given(st.lists(finite, min_size=1, max_size=20))
def test_score_is_exactly_one_for_non_decreasing(v: list[float]) -> None:
    """Catches an unstable sort (ties would lose score) or a descending sort."""
    assert sorting_score(sorted(v)) == 1.0


@SETTINGS
@given(st.lists(finite, min_size=1, max_size=20, unique=True))
def test_score_of_strictly_decreasing_is_the_minimum(v: list[float]) -> None:
    """Catches a wrong normaliser: reversal must score 0 (even K) or exactly 1/K^2 (odd K)."""
    k = len(v)
    score = sorting_score(sorted(v, reverse=True))
    if k % 2 == 0:
        assert score == 0.0
    else:
        assert math.isclose(score, 1.0 / k**2, rel_tol=1e-12)


@SETTINGS
@given(st.lists(positive, min_size=1, max_size=20))
def test_score_is_scale_invariant(v: list[float]) -> None:
    """Catches a score that looks at magnitudes (it must depend only on the order of v)."""
    # a power of two scales exactly, so no rounding can create or break a tie
    assert sorting_score([x * 2.0**20 for x in v]) == sorting_score(v)


@SETTINGS
@given(
    st.lists(positive, min_size=1, max_size=20),
    st.floats(min_value=0.1, max_value=5.0),
    st.floats(min_value=0.1, max_value=5.0),
)
def test_initial_targets_finite_line_between_bounds(
    v0: list[float], alpha: float, beta: float
) -> None:
    """Catches non-finite targets (K = 1 division by K - 1) and a line that misses its ends
    or is not straight; infeasible pairs must raise, never return."""
    lower, upper = alpha * min(v0), beta * max(v0)
    if lower >= upper:
        try:
            initial_targets(v0, alpha, beta)
        except InfeasibleBoundsError:
            return
        raise AssertionError("infeasible bounds returned targets")
    t = initial_targets(v0, alpha, beta)
    assert len(t) == len(v0)
    assert all(math.isfinite(x) and x > 0 for x in t)
    assert math.isclose(t[0], lower, rel_tol=1e-12)
    if len(t) > 1:
        assert math.isclose(t[-1], upper, rel_tol=1e-9)
        gaps = [b - a for a, b in zip(t, t[1:])]
        assert all(g > 0 for g in gaps)
        assert max(gaps) - min(gaps) <= 1e-9 * (upper - lower)


@SETTINGS
@given(st.lists(finite, min_size=1, max_size=20))
def test_repaired_targets_non_decreasing_and_finite(v: list[float]) -> None:
    """Catches a repair that leaves a descent (comparing to the original, not the repaired
    neighbour), moves the middle unit, or yields non-finite values at K = 1."""
    t = repaired_targets(v)
    k = len(v)
    assert len(t) == k
    assert all(math.isfinite(x) for x in t)
    assert all(a <= b for a, b in zip(t, t[1:]))
    assert t[k // 2] == v[k // 2]
    assert sorting_score(t) == 1.0


@SETTINGS
@given(st.lists(finite, min_size=2, max_size=20))
def test_repaired_targets_keep_non_violating_entries(v: list[float]) -> None:
    """Catches a repair that rewrites the whole sequence: on already non-decreasing input it
    must be the identity."""
    s = sorted(v)
    assert repaired_targets(s) == s


@SETTINGS
@given(
    st.lists(st.tuples(lr_values, positive, positive), min_size=1, max_size=20),
)
def test_updated_lrs_finite_and_positive(rows: list[tuple[float, float, float]]) -> None:
    """Catches overflow or sign errors in Eq. 16 on finite positive inputs."""
    lrs, v, t = (list(x) for x in zip(*rows))
    new = updated_lrs(lrs, v, t)
    assert len(new) == len(lrs)
    assert all(math.isfinite(x) and x > 0 for x in new)


@SETTINGS
@given(
    st.lists(st.tuples(lr_values, positive, positive), min_size=1, max_size=20),
)
def test_updated_lrs_hit_targets_when_variation_is_linear(
    rows: list[tuple[float, float, float]],
) -> None:
    """Catches an Eq. 16 that does not land on the target under its own assumption v = c*lr
    (e.g. lr * v / t, or an additive lr + t - v)."""
    lrs, slopes, t = (list(x) for x in zip(*rows))
    v = [c * lr for c, lr in zip(slopes, lrs)]  # first measurement
    new = updated_lrs(lrs, v, t)
    remeasured = [c * lr for c, lr in zip(slopes, new)]  # second measurement at the new LRs
    for got, want in zip(remeasured, t):
        assert math.isclose(got, want, rel_tol=1e-9)


@SETTINGS
@given(st.lists(positive, min_size=1, max_size=20), st.floats(min_value=1e-8, max_value=1.0))
def test_updated_lrs_at_target_keep_lr(v: list[float], lr: float) -> None:
    """Catches an update that moves a unit already on its target (t = v must keep lr)."""
    new = updated_lrs([lr] * len(v), v, v)
    assert all(math.isclose(x, lr, rel_tol=1e-12) for x in new)


@SETTINGS
@given(units, st.floats(min_value=1e-8, max_value=1e2))
def test_rules_on_constant_variation(k: int, value: float) -> None:
    """Catches a division by (max - min) = 0 when every unit varies equally."""
    v = [value] * k
    assert sorting_score(v) == 1.0
    assert repaired_targets(v) == v
    t = initial_targets(v, 1.0, 2.0)  # lower = value < upper = 2 * value
    assert all(math.isfinite(x) for x in t)
    if k > 1:
        assert math.isclose(t[-1], 2 * value, rel_tol=1e-12)
