"""Hand-computed checks of the pure AutoLR rules (spec sections 4-6)."""

import random

import pytest

from dml.autolr import initial_targets, repaired_targets, sorting_score, updated_lrs
from dml.autolr.rules import InfeasibleBoundsError
from dml.errors import InfeasibleError

# ---------------------------------------------------------------- sorting_score


def test_score_ascending_is_one() -> None:
    # order = [0, 1, 2, 3, 4] -> displacement 0 -> 1 - 0 = 1.0
    assert sorting_score([0.1, 0.2, 0.3, 0.4, 0.5]) == 1.0


def test_score_single_unit_is_one() -> None:
    # K = 1: order = [0], displacement 0 -> 1.0
    assert sorting_score([7.0]) == 1.0


def test_score_empty_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        sorting_score([])


def test_score_fully_reversed_k4() -> None:
    # v = [4, 3, 2, 1]: order = [3, 2, 1, 0]
    # sum |i - order[i]| = 3 + 1 + 1 + 3 = 8 -> 1 - 2*8/16 = 0.0
    assert sorting_score([4.0, 3.0, 2.0, 1.0]) == 0.0


def test_score_fully_reversed_k3() -> None:
    # v = [3, 2, 1]: order = [2, 1, 0]; sum = 2 + 0 + 2 = 4 -> 1 - 8/9 = 1/9
    assert sorting_score([3.0, 2.0, 1.0]) == pytest.approx(1 / 9)


def test_score_one_neighbour_swap_matches_spec() -> None:
    # One swap of neighbours: sum = 1 + 1 = 2 -> 1 - 4/K^2.
    # K = 7: 1 - 4/49 = 0.91837 (spec: 0.918); K = 14: 1 - 4/196 = 0.97959 (spec: 0.980)
    v7 = [1.0, 2.0, 4.0, 3.0, 5.0, 6.0, 7.0]
    assert sorting_score(v7) == pytest.approx(1 - 4 / 49)
    assert round(sorting_score(v7), 3) == 0.918
    v14 = [float(x) for x in range(14)]
    v14[5], v14[6] = v14[6], v14[5]
    assert round(sorting_score(v14), 3) == 0.980


def test_score_hand_example() -> None:
    # v = [2, 1, 3, 0]: ascending positions order = [3, 1, 0, 2]
    # |0-3| + |1-1| + |2-0| + |3-2| = 3 + 0 + 2 + 1 = 6 -> 1 - 12/16 = 0.25
    assert sorting_score([2.0, 1.0, 3.0, 0.0]) == 0.25


def test_score_all_ties_is_one() -> None:
    # Stable sort keeps [0, 1, 2] -> 1.0 (a tie-reversing sort would give [2, 1, 0] -> 1/9)
    assert sorting_score([1.0, 1.0, 1.0]) == 1.0


def test_score_ties_are_stable() -> None:
    # v = [0, 1, 1]: stable order = [0, 1, 2] -> 1.0.
    # An unstable sort that put the tie as [0, 2, 1] would give sum 0 + 1 + 1 = 2
    # -> 1 - 4/9 = 5/9, so this pins the stable choice.
    assert sorting_score([0.0, 1.0, 1.0]) == 1.0
    # v = [1, 0, 0]: stable order = [1, 2, 0]; sum = 1 + 1 + 2 = 4 -> 1 - 8/9 = 1/9
    assert sorting_score([1.0, 0.0, 0.0]) == pytest.approx(1 / 9)


def test_score_accepts_ints_and_returns_float() -> None:
    score = sorting_score([1, 2, 3])
    assert isinstance(score, float)
    assert score == 1.0


# -------------------------------------------------------------- initial_targets


def test_initial_targets_straight_line() -> None:
    # v0 = [10, 3, 1, 7], alpha = 2, beta = 0.5
    # lower = 2 * 1 = 2, upper = 0.5 * 10 = 5, step = (5 - 2)/3 = 1 -> [2, 3, 4, 5]
    assert initial_targets([10.0, 3.0, 1.0, 7.0], 2.0, 0.5) == pytest.approx([2, 3, 4, 5])


def test_initial_targets_paper_cub_values() -> None:
    # alpha = 2, beta = 0.4 (supplement A, CUB-200); v0 = [1, 20, 6]
    # lower = 2, upper = 8, step = (8 - 2)/2 = 3 -> [2, 5, 8]
    assert initial_targets([1.0, 20.0, 6.0], 2.0, 0.4) == pytest.approx([2, 5, 8])


def test_initial_targets_endpoints_exact() -> None:
    # Unit 1 gets exactly lower, unit K exactly upper (up to rounding).
    v0 = [3e-6, 1e-6, 4e-6, 1.5e-6, 9e-6, 2.6e-6]
    t = initial_targets(v0, 2.0, 0.4)
    assert t[0] == pytest.approx(2e-6)  # 2 * 1e-6
    assert t[-1] == pytest.approx(3.6e-6)  # 0.4 * 9e-6
    assert all(a < b for a, b in zip(t, t[1:], strict=False))


def test_initial_targets_single_unit_returns_lower() -> None:
    # K = 1: lower = 2 * 5 = 10, upper = 3 * 5 = 15 -> [lower]
    assert initial_targets([5.0], 2.0, 3.0) == [10.0]


def test_initial_targets_single_unit_still_checks_bounds() -> None:
    # K = 1 with alpha = 2, beta = 0.4: lower 10 >= upper 2 -> infeasible
    with pytest.raises(ValueError, match="infeasible"):
        initial_targets([5.0], 2.0, 0.4)


def test_initial_targets_infeasible_names_both_bounds() -> None:
    # v0 = [1, 2, 4], alpha = 2, beta = 0.4: lower = 2, upper = 1.6 -> infeasible
    with pytest.raises(ValueError) as info:
        initial_targets([1.0, 2.0, 4.0], 2.0, 0.4)
    msg = str(info.value)
    assert "lower alpha*min(v0) = 2" in msg
    assert "upper beta*max(v0) = 1.6" in msg
    assert "alpha=2.0" in msg and "beta=0.4" in msg
    assert "\n" not in msg


def test_initial_targets_equal_bounds_are_infeasible() -> None:
    # v0 = [1, 4], alpha = 2, beta = 0.5: lower = 2 = upper -> no line
    with pytest.raises(InfeasibleBoundsError):
        initial_targets([1.0, 4.0], 2.0, 0.5)


def test_infeasible_error_is_a_dml_error() -> None:
    # The trainer reports dml errors as one line; the rule error must be one.
    with pytest.raises(InfeasibleError):
        initial_targets([1.0, 2.0, 4.0], 2.0, 0.4)


def test_initial_targets_empty_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        initial_targets([], 2.0, 0.4)


# ------------------------------------------------------------- repaired_targets


def test_repair_keeps_ascending_input() -> None:
    v = [1.0, 2.0, 2.0, 5.0]
    out = repaired_targets(v)
    assert out == v
    assert out is not v


def test_repair_single_unit_is_copy() -> None:
    v = [3.0]
    out = repaired_targets(v)
    assert out == [3.0]
    assert out is not v


def test_repair_empty_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        repaired_targets([])


def test_repair_fully_reversed_k4() -> None:
    # v = [4, 3, 2, 1]: step = (4 - 1)/3 = 1, c = 2
    # down i=2: t2=2 < t1=3 -> t1 = 2 - 1 = 1; i=1: t1=1 < t0=4 -> t0 = 0
    # up   i=2: t2=2 > t3=1 -> t3 = 2 + 1 = 3
    assert repaired_targets([4.0, 3.0, 2.0, 1.0]) == [0.0, 1.0, 2.0, 3.0]


def test_repair_upward_cascade() -> None:
    # v = [1, 2, 3, 0, 2]: step = (3 - 0)/4 = 0.75, c = 2
    # down: i=2: 3 < 2? no; i=1: 2 < 1? no
    # up:   i=2: t2=3 > t3=0 -> t3 = 3.75; i=3: t3=3.75 > t4=2 -> t4 = 4.5
    assert repaired_targets([1.0, 2.0, 3.0, 0.0, 2.0]) == [1.0, 2.0, 3.0, 3.75, 4.5]


def test_repair_can_go_negative() -> None:
    # v = [3, 4, 1, 2, 5]: step = (5 - 1)/4 = 1, c = 2
    # down: i=2: t2=1 < t1=4 -> t1 = 1 - 1 = 0; i=1: t1=0 < t0=3 -> t0 = 0 - 1 = -1
    # up:   i=2: 1 > 2? no; i=3: 2 > 5? no
    assert repaired_targets([3.0, 4.0, 1.0, 2.0, 5.0]) == [-1.0, 0.0, 1.0, 2.0, 5.0]


def test_repair_two_units() -> None:
    # v = [2, 1]: step = 1, c = 1; down i=1: t1=1 < t0=2 -> t0 = 0; no up step
    assert repaired_targets([2.0, 1.0]) == [0.0, 1.0]


def test_repair_only_touches_violations() -> None:
    # v = [1, 5, 3, 4, 6, 7]: step = (7 - 1)/5 = 1.2, c = 3
    # down: i=3: t3=4 < t2=3? no; i=2: t2=3 < t1=5 -> t1 = 3 - 1.2 = 1.8;
    #       i=1: t1=1.8 < t0=1? no
    # up:   i=3: 4 > 6? no; i=4: 6 > 7? no
    assert repaired_targets([1.0, 5.0, 3.0, 4.0, 6.0, 7.0]) == pytest.approx(
        [1.0, 1.8, 3.0, 4.0, 6.0, 7.0]
    )


def test_repair_middle_unit_never_moves_and_output_is_ascending() -> None:
    rng = random.Random(0)
    for _ in range(200):
        k = rng.randint(1, 16)
        v = [rng.uniform(0.0, 10.0) for _ in range(k)]
        t = repaired_targets(v)
        assert len(t) == k
        assert t[k // 2] == v[k // 2]
        assert all(a <= b for a, b in zip(t, t[1:], strict=False))
        assert sorting_score(t) == 1.0


# ------------------------------------------------------------------ updated_lrs


def test_updated_lrs_hand_values() -> None:
    # lr * t / v per unit:
    # 1e-3 * 1 / 2 = 5e-4;  1e-3 * 4 / 4 = 1e-3;  2e-3 * 3 / 1 = 6e-3
    out = updated_lrs([1e-3, 1e-3, 2e-3], [2.0, 4.0, 1.0], [1.0, 4.0, 3.0])
    assert out == pytest.approx([5e-4, 1e-3, 6e-3])


def test_updated_lrs_matches_eq16_written_form() -> None:
    # Eq. 16 as written: lr + (t - v) / (v / lr); e.g. 1e-3 + (3e-6 - 2e-6)/(2e-6/1e-3)
    # = 1e-3 + 1e-6/2e-3 = 1e-3 + 5e-4 = 1.5e-3
    lrs, v, t = [1e-3, 5e-4], [2e-6, 8e-6], [3e-6, 2e-6]
    eq16 = [lr + (ti - vi) / (vi / lr) for lr, vi, ti in zip(lrs, v, t, strict=True)]
    assert updated_lrs(lrs, v, t) == pytest.approx(eq16)
    assert updated_lrs(lrs, v, t) == pytest.approx([1.5e-3, 1.25e-4])


def test_updated_lrs_does_not_clamp() -> None:
    # A negative target (possible after repair) gives a negative LR: 1e-3 * -1 / 2
    assert updated_lrs([1e-3], [2.0], [-1.0]) == pytest.approx([-5e-4])


def test_updated_lrs_zero_variation_names_unit() -> None:
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
    with pytest.raises(ValueError, match="length mismatch"):
        updated_lrs(lrs, v, t)


def test_updated_lrs_empty_is_empty() -> None:
    assert updated_lrs([], [], []) == []
