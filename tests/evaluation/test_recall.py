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


def pml_accuracy(
    emb: np.ndarray, labels: np.ndarray, metric: str, gallery=None, gallery_labels=None
) -> float:
    """A metric straight from PML's AccuracyCalculator: query = reference without a gallery,
    else the gallery as a separate reference (ref_includes_query=False)."""

    def unit(x):
        return torch.from_numpy(x / np.linalg.norm(x, axis=1, keepdims=True))

    calc = AccuracyCalculator(
        include=(metric,),
        k="max_bin_count",
        device=torch.device("cpu"),
        knn_func=FaissKNN(reset_before=True, reset_after=True),
    )
    if gallery is None:
        return calc.get_accuracy(unit(emb), torch.from_numpy(labels))[metric]
    reference = (unit(gallery), torch.from_numpy(gallery_labels))
    return calc.get_accuracy(
        unit(emb), torch.from_numpy(labels), *reference, ref_includes_query=False
    )[metric]


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
def test_cuda_tensors_give_the_cpu_result():
    """Bug: the GPU search (torch, without faiss-gpu) disagreeing with faiss on the host."""
    emb, labels = clustered(seed=2)
    got = recall_at_k(torch.from_numpy(emb).cuda(), torch.from_numpy(labels).cuda(), ks=KS)
    assert got == recall_at_k(emb, labels, ks=KS)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("with_gallery", [False, True])
def test_torch_search_finds_faiss_neighbours(monkeypatch, with_gallery):
    """Bug: the torch search (blocked product + topk, the GPU path) returning other neighbours
    than faiss: its own entry kept, a block's self-mask shifted by the block's start, or the
    neighbours out of order. Random data: no ties, so the lists must be equal."""
    monkeypatch.setattr(recall_mod, "_TORCH_BLOCK_ENTRIES", 7 * 150)  # blocks of 7 queries
    rng = np.random.default_rng(11)
    emb = _unit(rng.normal(size=(150, 12)))
    gallery = _unit(rng.normal(size=(150, 12))) if with_gallery else None
    want = np.concatenate([n for _, n in recall_mod._neighbour_blocks(emb, 9, gallery)])
    blocks = list(
        recall_mod._torch_neighbour_blocks(
            torch.from_numpy(emb), 9, None if gallery is None else torch.from_numpy(gallery)
        )
    )
    assert [start for start, _ in blocks] == list(range(0, 150, 7))
    got = torch.cat([n for _, n in blocks]).numpy()
    np.testing.assert_array_equal(got, want)
    if not with_gallery:
        assert not (got == np.arange(150)[:, None]).any()  # a query is never its own neighbour


def test_torch_search_metrics_equal_faiss_on_the_cpu_device():
    """Bug: Recall@K or MAP@R computed differently on the torch path (the one a GPU run takes
    when faiss has no GPU): a wrong R, hits against the wrong labels, the gallery codes apart
    from the queries'."""
    emb, labels = clustered(n=400, seed=12)
    faiss_out = recall_mod.retrieval_metrics(emb, labels, (1, 2, 4, 8), search="faiss")
    torch_out = recall_mod.retrieval_metrics(
        torch.from_numpy(emb), torch.from_numpy(labels), (1, 2, 4, 8), search="torch"
    )
    assert torch_out == pytest.approx(faiss_out, abs=1e-12)
    assert torch_out["R@1"] == pytest.approx(brute_force_recall(emb, labels, (1,))[1], abs=1e-12)
    q, q_lab, g, g_lab = query_gallery(seed=13)
    want = brute_force_gallery(q, q_lab, g, g_lab, (1, 4))
    got = recall_mod.retrieval_metrics(q, q_lab, (1, 4), True, g, g_lab, search="torch")
    assert got == pytest.approx(want, abs=1e-12)


def test_unknown_search_backend_is_refused():
    """Bug: a misspelt backend silently falling back to one of the two."""
    with pytest.raises(ValueError, match="search must be one of"):
        recall_mod.retrieval_metrics(GOOD_EMB, GOOD_LAB, (1,), search="gpu")


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


# -- query / gallery (In-Shop) ---------------------------------------------------------------
def query_gallery(seed: int, n_query: int = 120, n_gallery: int = 200, classes: int = 15):
    """Queries and a gallery drawn independently around shared class centres (16-d).

    Label 0 is only in the gallery and label classes - 1 only among the queries (so its
    queries have R = 0), and five queries are copied exactly into the gallery, same label.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, 16))
    q_lab = rng.integers(1, classes, n_query)
    q_lab[:3] = classes - 1
    g_lab = rng.integers(0, classes - 1, n_gallery - 5)
    q = (centres[q_lab] + 1.3 * rng.normal(size=(n_query, 16))).astype(np.float32)
    g = (centres[g_lab] + 1.3 * rng.normal(size=(len(g_lab), 16))).astype(np.float32)
    copied = rng.choice(np.flatnonzero(q_lab != classes - 1), 5, replace=False)
    g, g_lab = np.vstack([g, q[copied]]), np.concatenate([g_lab, q_lab[copied]])
    order = rng.permutation(n_gallery)
    return q, q_lab, g[order], g_lab[order]


def brute_force_gallery(q, q_lab, g, g_lab, ks) -> dict:
    """Reference R@k and MAP@R from the full query x gallery cosine matrix, nothing excluded."""
    qn = q.astype(np.float64) / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g.astype(np.float64) / np.linalg.norm(g, axis=1, keepdims=True)
    order = np.argsort(-(qn @ gn.T), axis=1, kind="stable")
    hits = g_lab[order] == q_lab[:, None]
    out = {f"R@{k}": float(hits[:, :k].any(axis=1).mean()) for k in ks}
    aps = []
    for row in hits:
        r = int(row.sum())  # the gallery items sharing the query's label
        if r:
            rel = row[:r]
            aps.append(float((rel * np.cumsum(rel) / np.arange(1, r + 1)).sum() / r))
    return out | {"MAP@R": float(np.mean(aps))}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gallery_matches_brute_force_reference(seed):
    """Bug: the gallery search dropping each query's first hit as if it were itself (the
    copied queries then lose their exact match), labels densified per set (label 0 exists only
    in the gallery, so the two sets' indices would be shifted), or R counted in the queries."""
    q, q_lab, g, g_lab = query_gallery(seed)
    got = recall_mod.retrieval_metrics(q, q_lab, KS, gallery=g, gallery_labels=g_lab)
    want = brute_force_gallery(q, q_lab, g, g_lab, KS)
    assert all(0.0 < v < 1.0 for v in want.values()), want
    assert got == pytest.approx(want, abs=1e-12)
    assert recall_at_k(q, q_lab, KS, gallery=g, gallery_labels=g_lab) == pytest.approx(
        {k: want[f"R@{k}"] for k in KS}, abs=1e-12
    )
    assert map_at_r(q, q_lab, gallery=g, gallery_labels=g_lab) == pytest.approx(
        want["MAP@R"], abs=1e-12
    )


def test_gallery_chunked_search_matches_brute_force(monkeypatch):
    """Bug: a per-block offset (the self-exclusion's) applied to gallery indices."""
    monkeypatch.setattr(recall_mod, "_QUERY_CHUNK", 7)
    monkeypatch.setattr(recall_mod, "_NORM_CHUNK", 5)
    q, q_lab, g, g_lab = query_gallery(4, n_query=53, n_gallery=81)
    got = recall_mod.retrieval_metrics(q, q_lab, KS, gallery=g, gallery_labels=g_lab)
    assert got == pytest.approx(brute_force_gallery(q, q_lab, g, g_lab, KS), abs=1e-12)


def test_gallery_hand_computed():
    """Bug: an identical gallery item dropped as "self", a query with R = 0 averaged in as AP 0,
    or R taken from the union of both sets instead of the gallery.

    Unit vectors at these angles; the gap in angle orders the similarities.
    Gallery: g0 0 deg A (a copy of q0), g1 20 B, g2 40 A, g3 60 A, g4 80 B, so R(A)=3, R(B)=2.
    q0 (0 deg, A): g0 g1 g2 -> A B A, hits [1,0,1], AP = (1/1 + 2/3) / 3 = 5/9.
    q1 (90 deg, B): g4 g3 -> B A, hits [1,0], AP = (1/1) / 2 = 1/2.
    q2 (45 deg, C): no C in the gallery, so R = 0: left out of MAP@R, a miss for Recall@K.
    MAP@R = (5/9 + 1/2) / 2 = 19/36 (dropping the first hit gives 7/36, averaging q2 in 19/54).
    R@1: q0 (g0) and q1 (g4) hit, q2 misses -> 2/3; R@5 likewise 2/3.
    """

    def unit(degrees):
        a = np.deg2rad(degrees)
        return np.stack([np.cos(a), np.sin(a)], axis=1)

    q, q_lab = unit([0.0, 90.0, 45.0]), np.array(["A", "B", "C"])
    g, g_lab = unit([0.0, 20.0, 40.0, 60.0, 80.0]), np.array(["A", "B", "A", "A", "B"])
    got = recall_mod.retrieval_metrics(q, q_lab, (1, 5), gallery=g, gallery_labels=g_lab)
    assert got == pytest.approx({"R@1": 2 / 3, "R@5": 2 / 3, "MAP@R": 19 / 36}, abs=1e-12)


def test_gallery_equal_to_queries_counts_each_query_as_its_own_neighbour():
    """Bug: gallery mode still excluding the query's own index (here the gallery is the query
    set, so every query's rank-1 item is its identical copy with its own label)."""
    emb, labels = clustered(seed=13)
    got = recall_at_k(emb, labels, ks=(1,), gallery=emb, gallery_labels=labels)
    assert got == {1: 1.0} and recall_at_k(emb, labels, ks=(1,))[1] < 1.0


def test_gallery_equals_pml_with_separate_reference():
    """Bug: any disagreement with PML's query/reference evaluation (ref_includes_query=False),
    which, like us, leaves queries whose label has no gallery item out of MAP@R; its P@1 also
    leaves them out, so our R@1 is compared on the queries whose label is in the gallery."""
    q, q_lab, g, g_lab = query_gallery(5)
    pml_map = pml_accuracy(q, q_lab, "mean_average_precision_at_r", g, g_lab)
    assert map_at_r(q, q_lab, gallery=g, gallery_labels=g_lab) == pytest.approx(pml_map, abs=1e-12)
    present = np.isin(q_lab, g_lab)
    assert not present.all()
    ours_r1 = recall_at_k(q[present], q_lab[present], (1,), g, g_lab)[1]
    assert ours_r1 == pytest.approx(pml_accuracy(q, q_lab, "precision_at_1", g, g_lab), abs=1e-12)


def test_gallery_searched_once_with_k_not_k_plus_1(monkeypatch):
    """Bug: gallery mode searching a second index, the query set, or k + 1 neighbours (the
    self-exclusion's extra one, which would be wasted, or wrongly dropped)."""
    q, q_lab, g, g_lab = query_gallery(6, n_query=400)
    built, searches = [], []
    real = recall_mod._flat_ip_index

    def counting_index(x, k):
        built.append(len(x))
        index = real(x, k)
        search = index.search
        index.search = lambda qq, kk: searches.append((len(qq), kk)) or search(qq, kk)
        return index

    monkeypatch.setattr(recall_mod, "_flat_ip_index", counting_index)
    monkeypatch.setattr(recall_mod, "_QUERY_CHUNK", 150)
    got = recall_mod.retrieval_metrics(q, q_lab, (1, 4, 16), gallery=g, gallery_labels=g_lab)
    r_max = np.bincount(g_lab).max()  # R = the gallery items sharing the query's label
    assert r_max > 16 and built == [len(g)]
    assert searches == [(150, r_max), (150, r_max), (100, r_max)]
    monkeypatch.undo()
    assert got == pytest.approx(brute_force_gallery(q, q_lab, g, g_lab, (1, 4, 16)), abs=1e-12)


def test_gallery_ks_limited_by_gallery_size_not_query_count():
    """Bug: the n-1 limit of the self search applied to a gallery search (two queries would
    allow only k = 1), or ks beyond the gallery's size crashing retrieval_metrics.

    Queries at 0 and 90 degrees, gallery at 0, 30, 60, 90 degrees: each query's nearest gallery
    item has the other label and its second the same one, so R@1 = 0 and R@2 = R@4 = 1.
    """
    angles = np.deg2rad([0.0, 90.0, 0.0, 30.0, 60.0, 90.0])
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    q, q_lab, g, g_lab = points[:2], np.array([0, 1]), points[2:], np.array([1, 0, 1, 0])
    got = recall_mod.retrieval_metrics(q, q_lab, (1, 2, 4, 8), False, g, g_lab)
    assert got == {"R@1": 0.0, "R@2": 1.0, "R@4": 1.0}
    assert recall_at_k(q[:1], q_lab[:1], (1, 4), g, g_lab) == {1: 0.0, 4: 1.0}


def test_gallery_torch_and_large_labels_agree_with_numpy():
    """Bug: torch galleries not converted, or labels cast (as PML does) to float and merged."""
    q, q_lab, g, g_lab = query_gallery(7)
    want = recall_mod.retrieval_metrics(q, q_lab, KS, gallery=g, gallery_labels=g_lab)
    got = recall_mod.retrieval_metrics(
        torch.from_numpy(q),
        torch.from_numpy(q_lab + 2**40),
        KS,
        gallery=torch.from_numpy(g).double().requires_grad_(True),
        gallery_labels=torch.from_numpy(g_lab + 2**40),
    )
    assert got == want


def test_no_gallery_results_unchanged():
    """Bug: the gallery changes altering the self search (values computed with the code as it
    was before galleries existed), or gallery=None not meaning "no gallery"."""
    emb, labels = clustered(n=250, seed=11)
    want = {"R@1": 0.62, "R@2": 0.792, "R@4": 0.9, "R@8": 0.964, "R@16": 0.992}
    got = recall_mod.retrieval_metrics(emb, labels, KS)
    assert got == pytest.approx(want | {"MAP@R": 0.3023465997728621}, abs=1e-12)
    explicit = recall_mod.retrieval_metrics(emb, labels, KS, True, None, None)
    assert explicit == got


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gallery": GOOD_EMB}, "given together"),
        ({"gallery_labels": GOOD_LAB}, "given together"),
        ({"gallery": GOOD_EMB[:, :3], "gallery_labels": GOOD_LAB}, r"dimension 3 .* 4"),
        ({"gallery": GOOD_EMB, "gallery_labels": GOOD_LAB[:3]}, "gallery and gallery_labels"),
        ({"gallery": GOOD_EMB[0], "gallery_labels": GOOD_LAB[:1]}, "gallery must be 2-D"),
        ({"gallery": GOOD_EMB[:0], "gallery_labels": GOOD_LAB[:0]}, "at least 1 gallery"),
        ({"gallery": GOOD_EMB * np.nan, "gallery_labels": GOOD_LAB}, "gallery contain NaN"),
        ({"gallery": GOOD_EMB, "gallery_labels": GOOD_LAB, "ks": (1, 5)}, "gallery items \\(4\\)"),
    ],
)
def test_gallery_bad_inputs(kwargs, match):
    """Bug: a half-given, mis-shaped or too small gallery silently falling back to the self
    search or reaching faiss (which returns -1 indices for k beyond its size)."""
    with pytest.raises(ValueError, match=match):
        recall_at_k(GOOD_EMB, GOOD_LAB, **({"ks": (1,)} | kwargs))


def test_gallery_map_at_r_undefined_when_no_query_label_is_in_the_gallery():
    """Bug: a MAP@R of nan (the mean of no queries) instead of an error."""
    with pytest.raises(ValueError, match="no query's label is in the gallery"):
        map_at_r(GOOD_EMB, GOOD_LAB, gallery=GOOD_EMB, gallery_labels=GOOD_LAB + 2)
    with pytest.raises(ValueError, match="given together"):
        map_at_r(GOOD_EMB, GOOD_LAB, gallery=GOOD_EMB)
