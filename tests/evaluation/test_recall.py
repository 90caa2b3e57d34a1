"""Tests for dml.evaluation.recall: Recall@K and MAP@R."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import FaissKNN

from dml.evaluation import map_at_r, recall_at_k
from dml.evaluation import recall as recall_mod

KS = (1, 2, 4, 8, 16)


def clustered(n: int = 300, d: int = 16, classes: int = 12, noise: float = 1.3, seed: int = 0):
    """Gaussian clusters noisy enough that recalls fall strictly between 0 and 1."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d))
    # Every class gets at least two members so PML's lone-query rule never kicks in.
    labels = np.concatenate(
        [np.arange(classes), np.arange(classes), rng.integers(0, classes, n - 2 * classes)]
    )
    rng.shuffle(labels)
    emb = centres[labels] + noise * rng.normal(size=(n, d))
    return emb.astype(np.float32), labels


def brute_force_recall(emb: np.ndarray, labels: np.ndarray, ks) -> dict[int, float]:
    """Reference Recall@K from a full cosine-similarity matrix."""
    x = emb.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")
    hits = labels[order] == labels[:, None]
    return {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}


def pml_accuracy(emb: np.ndarray, labels: np.ndarray, metric: str) -> float:
    """A metric straight from PML's AccuracyCalculator with query = reference."""
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    calc = AccuracyCalculator(
        include=(metric,),
        k="max_bin_count",
        device=torch.device("cpu"),
        knn_func=FaissKNN(reset_before=True, reset_after=True),
    )
    return calc.get_accuracy(torch.from_numpy(x), torch.from_numpy(labels))[metric]


def test_matches_brute_force_reference():
    emb, labels = clustered()
    got = recall_at_k(emb, labels, ks=KS)
    want = brute_force_recall(emb, labels, KS)
    assert list(got) == list(KS)
    assert all(0.0 < v < 1.0 for v in want.values()), want
    assert got == pytest.approx(want, abs=1e-12)


def test_chunked_search_matches_brute_force(monkeypatch):
    # Tiny chunks force several query blocks, so the self index offset per block matters.
    monkeypatch.setattr(recall_mod, "_QUERY_CHUNK", 7)
    monkeypatch.setattr(recall_mod, "_NORM_CHUNK", 5)
    emb, labels = clustered(n=101, seed=3)
    assert recall_at_k(emb, labels, ks=KS) == pytest.approx(
        brute_force_recall(emb, labels, KS), abs=1e-12
    )


def test_numpy_and_torch_inputs_agree():
    emb, labels = clustered(seed=1)
    from_numpy = recall_at_k(emb, labels, ks=KS)
    emb_t = torch.from_numpy(emb).requires_grad_(True)
    assert recall_at_k(emb_t, torch.from_numpy(labels), ks=KS) == from_numpy
    assert recall_at_k(emb.astype(np.float64), labels, ks=KS) == from_numpy
    assert recall_at_k(torch.from_numpy(emb).double(), labels, ks=KS) == from_numpy


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensor_is_moved_to_cpu():
    emb, labels = clustered(seed=2)
    got = recall_at_k(torch.from_numpy(emb).cuda(), torch.from_numpy(labels).cuda(), ks=KS)
    assert got == recall_at_k(emb, labels, ks=KS)


def test_does_not_mutate_input():
    emb, labels = clustered(seed=4)
    before = emb.copy()
    recall_at_k(emb, labels)
    np.testing.assert_array_equal(emb, before)


@pytest.mark.parametrize("reverse", [False, True])
def test_self_excluded_with_exact_duplicates(reverse):
    # x0 and x1 are identical with different labels: each must see the other, not itself,
    # at rank 1. Dropping the first hit would wrongly count one of them as a hit.
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    labels = np.array([0, 1, 0, 0])
    if reverse:
        emb, labels = emb[::-1].copy(), labels[::-1].copy()
    # q0: x1(L1), x2(L0) -> first hit at rank 2; q1: never; q2: x3 first; q3: x2 first.
    assert recall_at_k(emb, labels, ks=(1, 2, 3)) == {1: 0.5, 2: 0.75, 3: 0.75}


def test_many_duplicates_where_self_falls_outside_top_k():
    # Ten identical vectors: with k=1 faiss may return two others and not the query itself.
    emb = np.vstack([np.ones((10, 4)), -np.ones((2, 4))]).astype(np.float32)
    labels = np.array([0] * 10 + [1] * 2)
    assert recall_at_k(emb, labels, ks=(1,)) == {1: 1.0}


def test_recall_at_1_equals_pml_precision_at_1():
    emb, labels = clustered(seed=5)
    assert recall_at_k(emb, labels, ks=(1,))[1] == pytest.approx(
        pml_accuracy(emb, labels, "precision_at_1"), abs=1e-12
    )


def test_map_at_r_hand_computed():
    # Unit vectors at these angles: similarity order follows the angular gap.
    angles = np.deg2rad([0.0, 10.0, 25.0, 45.0, 70.0])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.array([0, 0, 1, 0, 0])
    # Class 0 has R=3. Hits in the top 3: q0 [1,0,1], q1 [1,0,1], q3 [0,1,1], q4 [1,0,1]
    # -> AP 5/9, 5/9, 7/18, 5/9. The lone class-1 query is excluded, as in PML.
    assert map_at_r(emb, labels) == pytest.approx(37 / 72, abs=1e-12)


def test_map_at_r_equals_pml():
    emb, labels = clustered(seed=6)
    got = map_at_r(emb, labels)
    assert 0.0 < got < 1.0
    assert got == pytest.approx(pml_accuracy(emb, labels, "mean_average_precision_at_r"), abs=1e-12)


def test_map_at_r_accepts_torch_and_large_labels():
    emb, labels = clustered(seed=7)
    # Labels beyond float32's exact integer range must not be merged by PML's float cast.
    big = labels.astype(np.int64) + 2**40
    assert map_at_r(torch.from_numpy(emb), torch.from_numpy(big)) == map_at_r(emb, labels)


GOOD_EMB = np.eye(4, dtype=np.float32)
GOOD_LAB = np.array([0, 0, 1, 1])


@pytest.mark.parametrize(
    ("emb", "labels", "ks", "match"),
    [
        (np.ones(4, dtype=np.float32), GOOD_LAB, (1,), "2-D"),
        (GOOD_EMB, GOOD_LAB[:3], (1,), "lengths differ"),
        (GOOD_EMB[:1], GOOD_LAB[:1], (1,), "at least 2"),
        (GOOD_EMB, GOOD_LAB.reshape(2, 2), (1,), "labels must be 1-D"),
        (GOOD_EMB, GOOD_LAB, (0, 1), "positive integers"),
        (GOOD_EMB, GOOD_LAB, (1.5,), "positive integers"),
        (GOOD_EMB, GOOD_LAB, (), "at least one k"),
        (GOOD_EMB, GOOD_LAB, (1, 4), "exceeds n-1"),
        (np.where(GOOD_EMB == 1, np.nan, 0).astype(np.float32), GOOD_LAB, (1,), "NaN or inf"),
        (np.where(GOOD_EMB == 1, np.inf, 0).astype(np.float32), GOOD_LAB, (1,), "NaN or inf"),
        (GOOD_EMB.astype(str), GOOD_LAB, (1,), "real numbers"),
    ],
)
def test_recall_bad_inputs(emb, labels, ks, match):
    with pytest.raises(ValueError, match=match):
        recall_at_k(emb, labels, ks=ks)


@pytest.mark.parametrize(
    ("emb", "labels", "match"),
    [
        (np.ones(4, dtype=np.float32), GOOD_LAB, "2-D"),
        (GOOD_EMB, GOOD_LAB[:3], "lengths differ"),
        (GOOD_EMB[:1], GOOD_LAB[:1], "at least 2"),
        (np.full((4, 4), np.nan, dtype=np.float32), GOOD_LAB, "NaN or inf"),
        (GOOD_EMB, np.arange(4), "only once"),
    ],
)
def test_map_at_r_bad_inputs(emb, labels, match):
    with pytest.raises(ValueError, match=match):
        map_at_r(emb, labels)


def test_retrieval_metrics_share_one_search(monkeypatch):
    """Bug: MAP@R searching again (a second index), which doubled evaluation time."""
    emb, labels = clustered(n=400, seed=8)
    searches = []
    real = recall_mod._flat_ip_index

    def counting_index(x, k):
        index = real(x, k)
        search = index.search

        def spy(q, kk):
            searches.append((len(q), kk))
            return search(q, kk)

        index.search = spy
        return index

    monkeypatch.setattr(recall_mod, "_flat_ip_index", counting_index)
    monkeypatch.setattr(recall_mod, "_QUERY_CHUNK", 150)
    got = recall_mod.retrieval_metrics(emb, labels, ks=(1, 4, 16))
    # 400 queries in blocks of 150: three searches, each of the largest k needed + self.
    r_max = np.bincount(labels).max() - 1
    assert searches == [(150, r_max + 1), (150, r_max + 1), (100, r_max + 1)]
    monkeypatch.undo()
    want = brute_force_recall(emb, labels, (1, 4, 16))
    assert [got[f"R@{k}"] for k in (1, 4, 16)] == pytest.approx(list(want.values()), abs=1e-12)
    pml = pml_accuracy(emb, labels, "mean_average_precision_at_r")
    assert got["MAP@R"] == pytest.approx(pml, abs=1e-12)


def test_map_at_r_uneven_classes_across_blocks_equals_pml(monkeypatch):
    """Bug: per-block AP using the wrong rows' R when classes differ in size."""
    rng = np.random.default_rng(9)
    sizes = [2, 3, 5, 9, 17, 30]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(labels)
    emb = rng.normal(size=(len(sizes), 8))[labels] + 1.5 * rng.normal(size=(len(labels), 8))
    emb = emb.astype(np.float32)
    monkeypatch.setattr(recall_mod, "_QUERY_CHUNK", 7)
    got = map_at_r(emb, labels)
    assert 0.0 < got < 1.0
    assert got == pytest.approx(pml_accuracy(emb, labels, "mean_average_precision_at_r"), abs=1e-12)


def test_retrieval_metrics_skip_ks_beyond_n_minus_1():
    """Bug: a small eval set (fewer than 9 items) crashing on R@8 instead of leaving it out."""
    emb = np.eye(4, dtype=np.float32) + 0.1
    got = recall_mod.retrieval_metrics(emb, np.array([0, 0, 1, 1]), ks=(1, 2, 4, 8), with_map=False)
    assert sorted(got) == ["R@1", "R@2"]


def test_gpu_index_used_when_faiss_sees_a_gpu(monkeypatch):
    """Bug: faiss-gpu installed but the search still on CPU (or asked for more than 2048)."""
    moved = []
    monkeypatch.setattr(recall_mod, "_gpu_count", lambda: 1)
    monkeypatch.setattr(recall_mod.faiss, "StandardGpuResources", lambda: "res", raising=False)

    def fake_to_gpu(res, device, index):
        moved.append((res, device))
        return index  # the CPU index stands in for the GPU one

    monkeypatch.setattr(recall_mod.faiss, "index_cpu_to_gpu", fake_to_gpu, raising=False)
    emb, labels = clustered(seed=10)
    assert recall_at_k(emb, labels, ks=KS) == pytest.approx(brute_force_recall(emb, labels, KS))
    assert moved == [("res", 0)]
    recall_mod._flat_ip_index(emb, recall_mod._GPU_MAX_K + 1)
    assert moved == [("res", 0)]
