"""Hand-computed checks of the pure AutoLR rules (spec sections 4-6).

Every expected number is worked out in the comment beside it; none is recomputed with the
implementation's expression.
"""

import pytest

from dml.autolr import initial_targets, repaired_targets, sorting_score, updated_lrs
from dml.autolr.rules import InfeasibleBoundsError
from dml.errors import DmlError, InfeasibleError

# ---------------------------------------------------------------- sorting_score


def test_score_ascending_is_one() -> None:
    """Catches sorting descending (ascending v would then score 0)."""
    # order = [0, 1, 2, 3, 4] -> displacement 0 -> 1 - 0 = 1.0
    assert sorting_score([0.1, 0.2, 0.3, 0.4, 0.5]) == 1.0


def test_score_single_unit_is_one() -> None:
    """Catches a K = 1 edge case that divides by K - 1 or returns 0."""
    # K = 1: order = [0], displacement 0 -> 1.0
    assert sorting_score([7.0]) == 1.0


def test_score_empty_raises() -> None:
    """Catches an empty v silently scoring (0/0) instead of a clear error."""
    with pytest.raises(ValueError, match="empty"):
        sorting_score([])


def test_score_fully_reversed_k4() -> None:
    """Catches a normaliser other than K^2 (K(K-1) would give 1 - 16/12 < 0)."""
    # v = [4, 3, 2, 1]: order = [3, 2, 1, 0]
    # sum |i - order[i]| = 3 + 1 + 1 + 3 = 8 -> 1 - 2*8/16 = 0.0
    assert sorting_score([4.0, 3.0, 2.0, 1.0]) == 0.0


def test_score_fully_reversed_k3() -> None:
    """Catches a missing factor 2 (1 - 4/9 = 5/9) or a K normaliser (1 - 8/3)."""
    # v = [3, 2, 1]: order = [2, 1, 0]; sum = 2 + 0 + 2 = 4 -> 1 - 8/9 = 1/9
    assert sorting_score([3.0, 2.0, 1.0]) == pytest.approx(1 / 9)


def test_score_fully_reversed_k5() -> None:
    """Catches an off-by-one in the positions (1-based i against 0-based order)."""
    # v = [5, 4, 3, 2, 1]: order = [4, 3, 2, 1, 0]; sum = 4 + 2 + 0 + 2 + 4 = 12
    # -> 1 - 24/25 = 0.04
    assert sorting_score([5.0, 4.0, 3.0, 2.0, 1.0]) == pytest.approx(0.04)


def test_score_one_neighbour_swap_matches_spec() -> None:
    """Catches a score that disagrees with the spec's quoted 0.918 (K=7) and 0.980 (K=14)."""
    # One swap of neighbours: sum = 1 + 1 = 2 -> 1 - 4/K^2.
    # K = 7: 1 - 4/49 = 0.918367; K = 14: 1 - 4/196 = 0.979592
    v7 = [1.0, 2.0, 4.0, 3.0, 5.0, 6.0, 7.0]
    assert sorting_score(v7) == pytest.approx(0.918367, abs=1e-6)
    v14 = [float(x) for x in range(14)]
    v14[5], v14[6] = v14[6], v14[5]
    assert sorting_score(v14) == pytest.approx(0.979592, abs=1e-6)


def test_score_hand_example() -> None:
    """Catches using the values' ranks wrongly or comparing against values, not positions."""
    # v = [2, 1, 3, 0]: ascending positions order = [3, 1, 0, 2]
    # |0-3| + |1-1| + |2-0| + |3-2| = 3 + 0 + 2 + 1 = 6 -> 1 - 12/16 = 0.25
    assert sorting_score([2.0, 1.0, 3.0, 0.0]) == 0.25


def test_score_depends_only_on_order() -> None:
    """Catches a score that looks at the magnitudes (e.g. a correlation) rather than order."""
    # same order as [2, 1, 3, 0] above -> same 0.25
    assert sorting_score([2e-6, 1e-6, 3e-6, 0.0]) == 0.25
    assert sorting_score([20.0, 10.0, 1000.0, -5.0]) == 0.25


def test_score_all_ties_is_one() -> None:
    """Catches an unstable / tie-reversing sort."""
    # Stable sort keeps [0, 1, 2] -> 1.0 (a tie-reversing sort would give [2, 1, 0] -> 1/9)
    assert sorting_score([1.0, 1.0, 1.0]) == 1.0


def test_score_ties_are_stable() -> None:
    """Catches an unstable sort on partial ties."""
    # v = [0, 1, 1]: stable order = [0, 1, 2] -> 1.0.
    # An unstable sort that put the tie as [0, 2, 1] would give sum 0 + 1 + 1 = 2
    # -> 1 - 4/9 = 5/9, so this pins the stable choice.
    assert sorting_score([0.0, 1.0, 1.0]) == 1.0
    # v = [1, 0, 0]: stable order = [1, 2, 0]; sum = 1 + 1 + 2 = 4 -> 1 - 8/9 = 1/9
    assert sorting_score([1.0, 0.0, 0.0]) == pytest.approx(1 / 9)


def test_score_accepts_ints_and_returns_float() -> None:
    """Catches integer arithmetic leaking out (a score that is an int, or floor division)."""
    score = sorting_score([3, 1, 2])
    # order = [1, 2, 0]; sum = 1 + 1 + 2 = 4 -> 1 - 8/9 = 0.111...
    assert isinstance(score, float)
    assert score == pytest.approx(1 / 9)


# -------------------------------------------------------------- initial_targets


def test_initial_targets_straight_line() -> None:
    """Catches taking v0's first/last entries instead of its min/max, or swapping alpha/beta."""
    # v0 = [10, 3, 1, 7], alpha = 2, beta = 0.5
    # lower = 2 * min = 2 * 1 = 2, upper = 0.5 * max = 0.5 * 10 = 5,
    # step = (5 - 2)/3 = 1 -> [2, 3, 4, 5]
    # (first/last would give lower 20, upper 3.5: infeasible; swapped alpha/beta: 0.5 .. 20)
    assert initial_targets([10.0, 3.0, 1.0, 7.0], 2.0, 0.5) == pytest.approx([2, 3, 4, 5])


def test_initial_targets_paper_cub_values() -> None:
    """Catches a step of (upper - lower)/K instead of /(K - 1) (the line would end short)."""
    # alpha = 2, beta = 0.4 (supplement A, CUB-200); v0 = [1, 20, 6]
    # lower = 2, upper = 8, step = (8 - 2)/2 = 3 -> [2, 5, 8]   (/K would give [2, 4, 6])
    assert initial_targets([1.0, 20.0, 6.0], 2.0, 0.4) == pytest.approx([2, 5, 8])


def test_initial_targets_paper_cars_values() -> None:
    """Catches the same line errors at the paper's Cars-196 pair and a realistic 1e-6 scale."""
    # alpha = 3, beta = 0.6; v0 = [2, 1, 5, 10] x 1e-6
    # lower = 3 * 1e-6 = 3e-6, upper = 0.6 * 10e-6 = 6e-6, step = 3e-6 / 3 = 1e-6
    # -> [3, 4, 5, 6] x 1e-6
    t = initial_targets([2e-6, 1e-6, 5e-6, 10e-6], 3.0, 0.6)
    assert t == pytest.approx([3e-6, 4e-6, 5e-6, 6e-6], rel=1e-12)


def test_initial_targets_endpoints_exact() -> None:
    """Catches unit 1 / unit K missing the bounds (an off-by-one in the line index)."""
    v0 = [3e-6, 1e-6, 4e-6, 1.5e-6, 9e-6, 2.6e-6]
    t = initial_targets(v0, 2.0, 0.4)
    # lower = 2 * 1e-6 = 2e-6, upper = 0.4 * 9e-6 = 3.6e-6, step = 1.6e-6 / 5 = 3.2e-7
    assert t == pytest.approx([2e-6, 2.32e-6, 2.64e-6, 2.96e-6, 3.28e-6, 3.6e-6], rel=1e-12)


def test_initial_targets_single_unit_returns_lower() -> None:
    """Catches a ZeroDivisionError from (upper - lower)/(K - 1) at K = 1."""
    # K = 1: lower = 2 * 5 = 10, upper = 3 * 5 = 15 -> [lower]
    assert initial_targets([5.0], 2.0, 3.0) == [10.0]


def test_initial_targets_single_unit_still_checks_bounds() -> None:
    """Catches the K = 1 shortcut skipping the infeasibility check."""
    # K = 1 with alpha = 2, beta = 0.4: lower 10 >= upper 2 -> infeasible
    with pytest.raises(InfeasibleBoundsError, match="infeasible"):
        initial_targets([5.0], 2.0, 0.4)


def test_initial_targets_infeasible_names_both_bounds() -> None:
    """Catches an infeasible pair training on, or a message without the bounds' values."""
    # v0 = [1, 2, 4], alpha = 2, beta = 0.4: lower = 2, upper = 0.4 * 4 = 1.6 -> infeasible
    with pytest.raises(ValueError) as info:
        initial_targets([1.0, 2.0, 4.0], 2.0, 0.4)
    msg = str(info.value)
    assert "lower alpha*min(v0) = 2" in msg
    assert "upper beta*max(v0) = 1.6" in msg
    assert "alpha=2.0" in msg and "beta=0.4" in msg
    assert "\n" not in msg


def test_initial_targets_equal_bounds_are_infeasible() -> None:
    """Catches a strict '>' check letting a flat (zero-slope) line through."""
    # v0 = [1, 4], alpha = 2, beta = 0.5: lower = 2 = upper = 2 -> no line
    with pytest.raises(InfeasibleBoundsError):
        initial_targets([1.0, 4.0], 2.0, 0.5)


def test_initial_targets_just_feasible() -> None:
    """Catches a '>' flipped to '<=' or an off-by-epsilon check rejecting a valid pair."""
    # v0 = [1, 4], alpha = 2, beta = 0.625: lower = 2, upper = 2.5 -> [2, 2.5]
    assert initial_targets([1.0, 4.0], 2.0, 0.625) == pytest.approx([2.0, 2.5])


def test_infeasible_error_is_a_dml_error() -> None:
    """Catches the rule error escaping the trainer's one-line dml error reporting."""
    with pytest.raises(InfeasibleError):
        initial_targets([1.0, 2.0, 4.0], 2.0, 0.4)
    assert issubclass(InfeasibleBoundsError, DmlError)


def test_initial_targets_empty_raises() -> None:
    """Catches min() of an empty list surfacing as an obscure error."""
    with pytest.raises(ValueError, match="empty"):
        initial_targets([], 2.0, 0.4)


# ------------------------------------------------------------- repaired_targets


def test_repair_keeps_ascending_input() -> None:
    """Catches repair changing already-ascending variations, or aliasing the caller's list."""
    v = [1.0, 2.0, 2.0, 5.0]
    out = repaired_targets(v)
    assert out == [1.0, 2.0, 2.0, 5.0]
    out[0] = 99.0
    assert v == [1.0, 2.0, 2.0, 5.0]


def test_repair_single_unit_is_copy() -> None:
    """Catches a ZeroDivisionError in the step (max - min)/(K - 1) at K = 1."""
    v = [3.0]
    out = repaired_targets(v)
    assert out == [3.0]
    assert out is not v


def test_repair_empty_raises() -> None:
    """Catches an empty input surfacing as an obscure error."""
    with pytest.raises(ValueError, match="empty"):
        repaired_targets([])


def test_repair_fully_reversed_k4() -> None:
    """Catches c = (K - 1)//2 for even K (it would give [2, 3, 4, 5]) and step /K."""
    # v = [4, 3, 2, 1]: step = (4 - 1)/3 = 1, c = 4 // 2 = 2
    # down i=2: t2=2 < t1=3 -> t1 = 2 - 1 = 1; i=1: t1=1 < t0=4 -> t0 = 0
    # up   i=2: t2=2 > t3=1 -> t3 = 2 + 1 = 3
    assert repaired_targets([4.0, 3.0, 2.0, 1.0]) == [0.0, 1.0, 2.0, 3.0]


def test_repair_upward_cascade() -> None:
    """Catches comparing against the original v instead of the already-repaired neighbour."""
    # v = [1, 2, 3, 0, 2]: step = (3 - 0)/4 = 0.75, c = 2
    # down: i=2: 3 < 2? no; i=1: 2 < 1? no
    # up:   i=2: t2=3 > t3=0 -> t3 = 3.75; i=3: t3=3.75 > t4=2 -> t4 = 4.5
    # (against the original v: 0 > 2? no -> t4 would stay 2, not ascending)
    assert repaired_targets([1.0, 2.0, 3.0, 0.0, 2.0]) == [1.0, 2.0, 3.0, 3.75, 4.5]


def test_repair_downward_cascade() -> None:
    """Catches the downward walk stopping at the first fix (or never reaching i = 1)."""
    # v = [9, 8, 1, 2, 3]: step = (9 - 1)/4 = 2, c = 2
    # down: i=2: t2=1 < t1=8 -> t1 = -1; i=1: t1=-1 < t0=9 -> t0 = -3
    # up:   i=2: 1 > 2? no; i=3: 2 > 3? no
    assert repaired_targets([9.0, 8.0, 1.0, 2.0, 3.0]) == [-3.0, -1.0, 1.0, 2.0, 3.0]


def test_repair_both_directions() -> None:
    """Catches a repair that walks only one way from the middle."""
    # v = [4, 5, 3, 1, 2]: step = (5 - 1)/4 = 1, c = 2
    # down: i=2: t2=3 < t1=5 -> t1 = 2; i=1: t1=2 < t0=4 -> t0 = 1
    # up:   i=2: t2=3 > t3=1 -> t3 = 4; i=3: t3=4 > t4=2 -> t4 = 5
    assert repaired_targets([4.0, 5.0, 3.0, 1.0, 2.0]) == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_repair_can_go_negative() -> None:
    """Catches a rule that clamps (clamping is the controller's job, spec section 8)."""
    # v = [3, 4, 1, 2, 5]: step = (5 - 1)/4 = 1, c = 2
    # down: i=2: t2=1 < t1=4 -> t1 = 1 - 1 = 0; i=1: t1=0 < t0=3 -> t0 = 0 - 1 = -1
    # up:   i=2: 1 > 2? no; i=3: 2 > 5? no
    assert repaired_targets([3.0, 4.0, 1.0, 2.0, 5.0]) == [-1.0, 0.0, 1.0, 2.0, 5.0]


def test_repair_two_units() -> None:
    """Catches c = 0 for K = 2 (the middle is index 1; 0 would move unit 2 up to 3)."""
    # v = [2, 1]: step = 1, c = 1; down i=1: t1=1 < t0=2 -> t0 = 0; no up step
    assert repaired_targets([2.0, 1.0]) == [0.0, 1.0]


def test_repair_only_touches_violations() -> None:
    """Catches a repair that rewrites every unit as a line (only violators may move)."""
    # v = [1, 5, 3, 4, 6, 7]: step = (7 - 1)/5 = 1.2, c = 3
    # down: i=3: t3=4 < t2=3? no; i=2: t2=3 < t1=5 -> t1 = 3 - 1.2 = 1.8;
    #       i=1: t1=1.8 < t0=1? no
    # up:   i=3: 4 > 6? no; i=4: 6 > 7? no
    assert repaired_targets([1.0, 5.0, 3.0, 4.0, 6.0, 7.0]) == pytest.approx(
        [1.0, 1.8, 3.0, 4.0, 6.0, 7.0]
    )


def test_repair_equal_neighbours_are_not_violations() -> None:
    """Catches '<=' in place of '<' (a tie would be pushed a step apart)."""
    # v = [2, 2, 2, 0]: step = 2/3, c = 2; down: 2 < 2? no (twice)
    # up: i=2: 2 > 0 -> t3 = 2 + 2/3 = 2.6667
    assert repaired_targets([2.0, 2.0, 2.0, 0.0]) == pytest.approx([2.0, 2.0, 2.0, 8 / 3])


# ------------------------------------------------------------------ updated_lrs


def test_updated_lrs_hand_values() -> None:
    """Catches Eq. 16 inverted (lr * v / t) or the LR and target swapped."""
    # lr * t / v per unit:
    # 1e-3 * 1 / 2 = 5e-4;  1e-3 * 4 / 4 = 1e-3;  2e-3 * 3 / 1 = 6e-3
    out = updated_lrs([1e-3, 1e-3, 2e-3], [2.0, 4.0, 1.0], [1.0, 4.0, 3.0])
    assert out == pytest.approx([5e-4, 1e-3, 6e-3], rel=1e-12)


def test_updated_lrs_eq16_written_form_numbers() -> None:
    """Catches an additive update lr + (t - v) (dropping the slope v / lr of Eq. 16)."""
    # Eq. 16 as written, lr + (t - v) / (v / lr), worked by hand:
    # unit 1: 1e-3 + (3e-6 - 2e-6)/(2e-6/1e-3) = 1e-3 + 1e-6/2e-3 = 1e-3 + 5e-4 = 1.5e-3
    # unit 2: 5e-4 + (2e-6 - 8e-6)/(8e-6/5e-4) = 5e-4 - 6e-6/1.6e-2 = 5e-4 - 3.75e-4 = 1.25e-4
    # (additive: 1e-3 + 1e-6 = 1.001e-3 and 5e-4 - 6e-6 = 4.94e-4)
    out = updated_lrs([1e-3, 5e-4], [2e-6, 8e-6], [3e-6, 2e-6])
    assert out == pytest.approx([1.5e-3, 1.25e-4], rel=1e-12)


def test_updated_lrs_does_not_clamp() -> None:
    """Catches a rule that clamps (bounding LRs is the controller's job, spec section 8)."""
    # A negative target (possible after repair) gives a negative LR: 1e-3 * -1 / 2 = -5e-4
    assert updated_lrs([1e-3], [2.0], [-1.0]) == pytest.approx([-5e-4])


def test_updated_lrs_zero_lr_stays_zero() -> None:
    """Catches the written form lr + (t - v)/(v / lr), which divides by zero when lr = 0."""
    # 0 * 3 / 2 = 0
    assert updated_lrs([0.0], [2.0], [3.0]) == [0.0]


def test_updated_lrs_zero_variation_names_unit() -> None:
    """Catches a ZeroDivisionError (or inf LR) instead of an error naming the unit."""
    with pytest.raises(ValueError, match=r"unit index 1 \(unit 2\)"):
        updated_lrs([1e-3, 1e-3, 1e-3], [1.0, 0.0, 2.0], [1.0, 1.0, 1.0])


@pytest.mark.parametrize(
    ("lrs", "v", "t"),
    [
        ([1e-3, 1e-3], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
        ([1e-3, 1e-3, 1e-3], [1.0, 2.0, 3.0], [1.0, 2.0]),
        ([1e-3], [1.0, 2.0], [1.0, 2.0]),
    ],
)
def test_updated_lrs_length_mismatch(lrs: list, v: list, t: list) -> None:
    """Catches zip() silently truncating to the shortest list (units dropped unnoticed)."""
    with pytest.raises(ValueError, match="length mismatch"):
        updated_lrs(lrs, v, t)


def test_updated_lrs_empty_is_empty() -> None:
    """Catches an empty unit list raising (every unit may be excluded as zero-variation)."""
    assert updated_lrs([], [], []) == []
