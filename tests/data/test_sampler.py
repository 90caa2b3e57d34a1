"""Epoch-seeded batches: reproducible per epoch, class-balanced on request."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dml.data.sampler import EpochBatchSampler, SeededBatches
from dml.errors import DmlError

LABELS = [i % 10 for i in range(100)]


def test_same_epoch_same_batches_other_epoch_differs():
    """Catches an order that ignores the epoch, or changes between two passes over one epoch."""
    s = EpochBatchSampler(LABELS, 20, seed=3)
    s.set_epoch(4)
    a = list(s)
    s.set_epoch(5)
    b = list(s)
    s.set_epoch(4)
    assert list(s) == a and a != b
    assert len(a) == 5 and sorted(i for batch in a for i in batch) == list(range(100))


def test_balanced_batches_hold_m_per_class():
    """Catches balanced batches with other than batch_size/m classes of m images each."""
    s = EpochBatchSampler(LABELS, 20, samples_per_class=4, seed=0)
    for batch in s:
        counts = Counter(LABELS[i] for i in batch)
        assert set(counts.values()) == {4} and len(counts) == 5


def test_state_dict_restores_order():
    """Catches a resume that loses the seed or epoch (a different order after restart)."""
    s = EpochBatchSampler(LABELS, 20, seed=7)
    s.set_epoch(2)
    t = EpochBatchSampler(LABELS, 20, seed=0)
    t.load_state_dict(s.state_dict())
    assert list(t) == list(s)


def test_bad_sizes():
    """Catches a batch larger than the split, or an m that does not divide the batch."""
    with pytest.raises(DmlError, match="batch_size"):
        EpochBatchSampler(LABELS, 500)
    with pytest.raises(DmlError, match="samples_per_class"):
        EpochBatchSampler(LABELS, 20, samples_per_class=3)


def test_seeded_batches_key_augmentation_by_seed_epoch_and_position():
    # Bug caught: seeds that ignore the epoch (same crops every epoch) or the position
    # (every sample of a batch flipped alike), or that change between two passes.
    from dml.data.sampler import SeededBatches, augment_seed

    inner = EpochBatchSampler(LABELS, 20, seed=3)
    keyed = SeededBatches(inner)
    inner.set_epoch(4)
    a = list(keyed)
    assert [[i for i, _ in batch] for batch in a] == list(inner)
    assert a == list(keyed)
    seeds = [s for batch in a for _, s in batch]
    assert len(set(seeds)) == 100
    assert a[1][2][1] == augment_seed(3, 4, 22)
    inner.set_epoch(5)
    assert not set(seeds) & {s for batch in keyed for _, s in batch}


# ---------------------------------------------------------------- class-balanced batches


def batch_ok(batch: list[int], labels: list[int], batch_size: int, m: int) -> bool:
    """batch_size / m distinct classes, each exactly m times."""
    counts = Counter(labels[i] for i in batch)
    return (
        len(batch) == batch_size and len(counts) == batch_size // m and set(counts.values()) == {m}
    )


def order_digest(sampler: EpochBatchSampler) -> str:
    """sha256 of the epoch's flat order, as json ('[i0, i1, ...]')."""
    flat = [i for batch in sampler for i in batch]
    return hashlib.sha256(json.dumps(flat).encode()).hexdigest()


# Orders recorded from the sampler BEFORE the straddling-batch fix, for inputs where it
# already gave valid batches: (labels, batch_size, m, seed, sha256 of epochs 0, 1, 2).
# The first two have classes * m a multiple of the batch; the other two do not but still
# happened to be valid, and the last has classes with fewer than m images (replacement).
RECORDED = {
    "40 classes x 30, batch 40, m 4": (
        [i % 40 for i in range(1200)],
        40,
        4,
        0,
        [
            "09c78f27b21cdf7ef95c3ddb1068a9417341ca00610cd171956162d179c045b4",
            "4663aa8ae5fa6a84dd47e750f2d6746f1b60c8d2005aa050ed8955c36c4870f1",
            "aa5962d00c3074c518c6a9b4bbe9a2d49aab5baefce28c90864a36a2dcebfde8",
        ],
    ),
    "50 classes x 30, batch 40, m 4": (
        [i % 50 for i in range(1500)],
        40,
        4,
        0,
        [
            "236e900a4fd2c1bc47dab0029e6a99c3e0f0a99e4cf6864bb14bb8e8c9ccc6ac",
            "cdd6d3c4489150491fbe6f918ae54f7c3e7151a3c524eab3cf48b36ccf46ff73",
            "f1db086783983992289fc47e3bf438fc38b93cbef75739a24b170f15ed004078",
        ],
    ),
    "13 classes x 6, batch 8, m 2 (valid by chance)": (
        [i % 13 for i in range(78)],
        8,
        2,
        1,
        [
            "4151c5b5fd0558b47c1ef60bb2b43523262972d655966d4ddca06c17c1c5c2e8",
            "a1a44e4f6deb9b7cbcef3b0ac3727a1a0d3a66be0369952054d9c76c37a282d8",
            "3dcb2eca6e975362c038e37625cb7feef0f503d05962176c261528c1dad35b9c",
        ],
    ),
    "20 uneven classes, batch 20, m 2": (
        [c for c in range(20) for _ in range(1 + c % 5)] * 2,
        20,
        2,
        3,
        [
            "ab093f7178f72e47e3d8b0a4976dd3652214dcdbaf06ff4b6f64917508bd4cf3",
            "3229aeb3d4113e9e430164dcd364181d531e422089932ad3e870dec17baf0335",
            "e4e98e99da9b534953a1e1b19602ae94624518e53fdc4e0c581869cbd4a3e180",
        ],
    ),
}


@pytest.mark.parametrize("case", list(RECORDED))
def test_balanced_order_unchanged_where_it_was_valid(case):
    """Catches any change of the balanced order (RNG draws, pass layout) for inputs the
    straddling-batch fix must not touch: existing experiments depend on these orders."""
    labels, batch_size, m, seed, digests = RECORDED[case]
    s = EpochBatchSampler(labels, batch_size, samples_per_class=m, seed=seed)
    for epoch, digest in enumerate(digests):
        s.set_epoch(epoch)
        assert order_digest(s) == digest, epoch


def test_balanced_order_prefix_typed_in():
    """Catches the same drift as above, readably: the first 80 indices of epoch 0 (40 and
    50 classes, batch 40, m 4, seed 0) as the sampler gave them before the fix."""
    first80_40 = [
        1124, 644, 364, 764, 336, 1096, 936, 216, 1021, 701, 421, 61, 765, 85, 925, 5,
        771, 891, 1011, 571, 1094, 894, 1054, 334, 759, 719, 919, 839, 429, 309, 629, 1189,
        377, 217, 1137, 897, 866, 306, 1026, 106, 1002, 82, 682, 642, 1086, 766, 1046, 166,
        100, 220, 140, 900, 945, 305, 1025, 65, 784, 624, 984, 1144, 801, 881, 681, 1,
        495, 1055, 1095, 175, 992, 312, 672, 1072, 988, 508, 468, 428, 98, 538, 18, 778,
    ]  # fmt: skip
    first80_50 = [
        94, 944, 1394, 894, 89, 939, 639, 1489, 557, 1007, 1307, 1157, 1006, 956, 206, 806,
        1067, 1217, 67, 817, 129, 1479, 329, 829, 771, 321, 471, 721, 987, 187, 787, 237,
        183, 283, 733, 883, 1160, 1210, 110, 1110, 31, 81, 331, 181, 272, 772, 872, 1172,
        634, 1284, 1184, 134, 102, 1152, 802, 1402, 24, 774, 1124, 1274, 1126, 426, 726, 226,
        1186, 986, 236, 686, 588, 538, 788, 38, 250, 900, 600, 350, 846, 546, 696, 1346,
    ]  # fmt: skip
    for classes, want in ((40, first80_40), (50, first80_50)):
        s = EpochBatchSampler([i % classes for i in range(30 * classes)], 40, 4, seed=0)
        assert [i for batch in s for i in batch][:80] == want, classes


def test_straddling_batch_never_repeats_a_class():
    """Catches the pass-boundary bug: 12 classes x 3 = 36 is not a multiple of 24, so batch 1
    straddles two passes; the old sampler put class 9 in it twice (6 images, 7 classes).
    Batch 0 lies inside the first pass and must stay exactly as it was."""
    labels = [i % 12 for i in range(144)]
    s = EpochBatchSampler(labels, 24, samples_per_class=3, seed=5)
    batches = list(s)
    assert batches[0] == [
        4, 40, 124, 97, 85, 49, 47, 131, 23, 89, 125, 53,
        104, 140, 8, 7, 139, 127, 134, 98, 26, 30, 42, 138,
    ]  # fmt: skip
    assert len(batches) == 6
    assert all(batch_ok(b, labels, 24, 3) for b in batches)


def test_cars_like_split_batches_are_balanced():
    """Catches the bug at Cars-196 scale: 98 classes x 4 = 392 is not a multiple of 40; the
    old sampler gave 6 of the 201 batches of epoch 0 a class twice."""
    labels = [i % 98 for i in range(8054)]
    s = EpochBatchSampler(labels, 40, samples_per_class=4, seed=0)
    for epoch in (0, 1):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == 201  # 8054 // 40
        assert all(batch_ok(b, labels, 40, 4) for b in batches)


def test_too_few_classes_for_a_batch():
    """Catches a silent fallback when batch_size/m exceeds the class count (every batch would
    repeat classes): construction must fail with one line naming both keys and the count."""
    # 10 classes, batch 44 with m 4 needs 44 / 4 = 11 classes
    with pytest.raises(DmlError) as info:
        EpochBatchSampler(LABELS, 44, samples_per_class=4)
    msg = str(info.value)
    assert "trainer.batch_size=44" in msg and "trainer.samples_per_class=4" in msg
    assert "11" in msg and "only 10 classes" in msg and "\n" not in msg
    # exactly enough classes (40 / 4 = 10) is fine, and plain shuffling never checks
    assert len(EpochBatchSampler(LABELS, 40, samples_per_class=4)) == 2
    assert len(EpochBatchSampler([0] * 50 + [1] * 50, 44)) == 2


def test_balanced_len_is_images_over_batch():
    """Catches len() counting class passes instead of len(labels) // batch_size, or the
    iterator yielding a different number of batches than len() promises."""
    labels = [i % 13 for i in range(78)]  # 78 // 8 = 9 batches (26 chunks of 2 per pass)
    s = EpochBatchSampler(labels, 8, samples_per_class=2, seed=4)
    batches = list(s)
    assert len(s) == 9 and len(batches) == 9
    assert all(len(b) == 8 for b in batches)


@settings(max_examples=200, deadline=None, database=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=14),
    m=st.integers(min_value=2, max_value=4),
    per_batch=st.integers(min_value=1, max_value=6),
    seed=st.integers(min_value=0, max_value=1000),
    epoch=st.integers(min_value=0, max_value=5),
)
def test_balanced_batches_property(sizes, m, per_batch, seed, epoch):
    """Catches any batch that holds a class in two m-chunks (a batch straddling two passes
    over the classes), for any class count, class sizes, m and batch size = m * classes per
    batch; too few classes must raise DmlError instead."""
    labels = [c for c, n in enumerate(sizes) for _ in range(n)]
    batch_size = m * per_batch
    if batch_size > len(labels) or batch_size < 2:
        return
    if len(sizes) < per_batch:
        with pytest.raises(DmlError, match="trainer.samples_per_class"):
            EpochBatchSampler(labels, batch_size, samples_per_class=m, seed=seed)
        return
    s = EpochBatchSampler(labels, batch_size, samples_per_class=m, seed=seed)
    s.set_epoch(epoch)
    batches = list(s)
    assert len(batches) == len(s) == len(labels) // batch_size
    assert all(batch_ok(b, labels, batch_size, m) for b in batches)
    assert list(s) == batches  # same epoch, same order


@pytest.mark.parametrize("m", [0, 4])
def test_ranks_split_each_global_batch_like_one_process(m):
    """Bug: under DDP each rank drawing its own batches (ranks overlap, a re-run differs) or
    the shares not adding up to the one-process batch the AutoLR maths assumes."""
    labels = [c for c in range(10) for _ in range(6)]
    one = EpochBatchSampler(labels, 16, m, seed=3)
    ranks = [EpochBatchSampler(labels, 16, m, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for s in [one, *ranks]:
        s.set_epoch(2)
    shares = [list(s) for s in ranks]
    assert len(shares[0]) == len(one) == 3
    for whole, first, second in zip(one, *shares):
        assert len(first) == len(second) == 8
        assert first + second == whole
    seeded_one = list(SeededBatches(one))
    seeded = [list(SeededBatches(s)) for s in ranks]
    assert [a + b for a, b in zip(*seeded)] == seeded_one  # same crops as one process


def test_global_batch_that_does_not_split():
    """Bug: a global batch of 40 over 3 ranks silently dropping images (or classes split)."""
    with pytest.raises(DmlError, match=r"batch_size=40 \(the global batch\).*multiple of 3$"):
        EpochBatchSampler(list(range(80)), 40, 0, rank=0, world_size=3)
    with pytest.raises(DmlError, match=r"multiple of 8 \(2 x trainer.samples_per_class=4\)"):
        EpochBatchSampler([c for c in range(10) for _ in range(8)], 36, 4, world_size=2)


# SOP-like class sizes: 2-12 images, most 2-6, mean 5 (SOP's train split: 59,551 images of
# 11,318 classes, 5.3 a class); class ids with gaps, images grouped by class as in Ebay_*.txt.
SOP_SIZES = (2, 3, 4, 5, 6, 3, 4, 12, 2, 5, 8, 6)
SOP_LABELS = [7 * c + 1 for c in range(300) for _ in range(SOP_SIZES[c % len(SOP_SIZES)])]


@pytest.mark.parametrize("m", [2, 4, 8])
def test_sop_like_small_classes_are_balanced(m):
    """Catches balanced batches breaking on SOP-like classes of 2-12 images: a batch with
    other than 32/m classes of m images, an index outside the split, an image drawn twice
    from a class that has m or more, a class of fewer than m images refused or padded from
    other classes (it is drawn with replacement), or classes left unvisited in an epoch."""
    labels, batch_size = SOP_LABELS, 32
    members = Counter(labels)
    assert sum(members.values()) / len(members) == 5 and min(members.values()) == 2
    s = EpochBatchSampler(labels, batch_size, samples_per_class=m, seed=11)
    for epoch in (0, 1):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(labels) // batch_size == 46
        seen = set()
        for batch in batches:
            assert all(0 <= i < len(labels) for i in batch)
            assert batch_ok(batch, labels, batch_size, m)
            for c in {labels[i] for i in batch}:
                picked = [i for i in batch if labels[i] == c]
                if members[c] >= m:
                    assert len(set(picked)) == m  # without replacement
                else:
                    assert len(set(picked)) <= members[c] < m  # with replacement
            seen |= {labels[i] for i in batch}
        if len(batches) * batch_size // m >= len(members) + batch_size // m:
            assert seen == set(members)  # one pass over the classes at least
        if m > 2:  # classes of 2 images drawn m times must repeat one (pigeonhole)
            assert any(len(set(b)) < len(b) for b in batches)
