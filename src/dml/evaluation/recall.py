"""Retrieval metrics on embeddings: Recall@K and MAP@R from one exact faiss kNN search.

Every metric reads the same neighbour lists: one search of the largest k any metric needs
(max(ks) for Recall@K, the largest class size minus one for MAP@R), run in query blocks so
memory stays O(block * k). pytorch-metric-learning's AccuracyCalculator is the reference the
tests compare against; it is not called here because it would search a second time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np
import torch

# Queries are searched in blocks so the result buffers stay O(chunk * k), not O(n * k) twice.
_QUERY_CHUNK = 8192
# Rows are normalised in blocks so the float64 temporary stays small.
_NORM_CHUNK = 8192


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Convert a numpy array or (possibly CUDA / grad-tracking) tensor to a numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        # numpy has no bfloat16, and half precision is widened anyway for faiss.
        if x.is_floating_point():
            x = x.to(torch.float32)
        return x.numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc


def _check_embeddings(embeddings: Any) -> np.ndarray:
    """Return the embeddings as a float32 array after shape, dtype and finiteness checks."""
    emb = _to_numpy(embeddings, "embeddings")
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n, d), got shape {emb.shape}")
    if not (np.issubdtype(emb.dtype, np.floating) or np.issubdtype(emb.dtype, np.integer)):
        raise ValueError(f"embeddings must be real numbers, got dtype {emb.dtype}")
    if emb.shape[0] < 2:
        raise ValueError(f"need at least 2 items to evaluate retrieval, got {emb.shape[0]}")
    if emb.shape[1] < 1:
        raise ValueError("embeddings must have at least 1 dimension, got 0")
    # float32 because that is what faiss searches; values beyond its range become inf here.
    with np.errstate(over="ignore"):
        emb = emb.astype(np.float32, copy=False)
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or inf (or values beyond float32 range)")
    return emb


def _check_labels(labels: Any, n: int) -> np.ndarray:
    """Return the labels as a 1-D array of length n."""
    lab = _to_numpy(labels, "labels")
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {lab.shape}")
    if lab.shape[0] != n:
        raise ValueError(f"embeddings and labels lengths differ: {n} vs {lab.shape[0]}")
    return lab


def _check_ks(ks: Sequence[int], n: int) -> tuple[int, ...]:
    """Return ks as a tuple of positive ints, each at most n - 1 (self is excluded)."""
    ks = tuple(ks) if not isinstance(ks, int | np.integer) else (ks,)
    if not ks:
        raise ValueError("ks must contain at least one k")
    for k in ks:
        # bool is an int subclass but True/False as k is surely a mistake.
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"ks must be positive integers, got {k!r}")
    if max(ks) > n - 1:
        raise ValueError(
            f"max(ks)={max(ks)} exceeds n-1={n - 1} (each query's own entry is excluded)"
        )
    return tuple(int(k) for k in ks)


def _l2_normalise(emb: np.ndarray) -> np.ndarray:
    """Return a new C-contiguous float32 array with unit-norm rows (zero rows stay zero)."""
    out = np.empty(emb.shape, dtype=np.float32)
    for start in range(0, emb.shape[0], _NORM_CHUNK):
        # float64 so squares of large-but-finite float32 values do not overflow.
        block = emb[start : start + _NORM_CHUNK].astype(np.float64)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + _NORM_CHUNK] = block / np.maximum(norms, 1e-12)
    return out


def _drop_self(indices: np.ndarray, first_query: int) -> np.ndarray:
    """Remove each row's own index from (rows, k+1) search results, giving (rows, k)."""
    own = np.arange(first_query, first_query + indices.shape[0])[:, None]
    is_self = indices == own
    # With many exact duplicates the query itself can be tied out of the top k+1;
    # then every hit is a genuine other item and the last one is surplus.
    is_self[~is_self.any(axis=1), -1] = True
    return indices[~is_self].reshape(indices.shape[0], indices.shape[1] - 1)


def _gpu_count() -> int:
    """Number of GPUs faiss can use (0 with faiss-cpu)."""
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


# faiss-gpu's brute-force search returns at most this many neighbours per query.
_GPU_MAX_K = 2048


def _flat_ip_index(emb: np.ndarray, k: int) -> faiss.Index:
    """Exact inner-product index over emb, on GPU when faiss-gpu sees one and k allows."""
    index = faiss.IndexFlatIP(emb.shape[1])
    if _gpu_count() > 0 and k <= _GPU_MAX_K:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(emb)
    return index


# faiss tiles a flat search into (queries x database) products of 4096 x 1024 by default;
# 4096 x 4096 tiles (64 MiB) ran the 20k x 20k x 512 search in 6.55 s instead of 7.21 s here
# (k = 9, measured with another job on the cores).
_BLAS_DATABASE_BS = 4096


@contextlib.contextmanager
def _blas_tiles():
    """Larger faiss BLAS tiles for the duration of a search (faiss's setting is global)."""
    before = faiss.cvar.distance_compute_blas_database_bs
    faiss.cvar.distance_compute_blas_database_bs = max(before, _BLAS_DATABASE_BS)
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_database_bs = before


def _neighbour_blocks(emb: np.ndarray, k: int):
    """Yield (first query, (rows, k) neighbour indices with self removed) per query block."""
    index = _flat_ip_index(emb, k + 1)
    for start in range(0, emb.shape[0], _QUERY_CHUNK):
        with _blas_tiles():
            _, nbrs = index.search(emb[start : start + _QUERY_CHUNK], k + 1)
        yield start, _drop_self(nbrs, start)


def _average_precision_at_r(hits: np.ndarray, r: np.ndarray) -> np.ndarray:
    """AP@R per row: hits (rows, >= max r) ranked relevance, r the row's number of relevant."""
    width = int(r.max()) if r.size else 0
    ranks = np.arange(1, width + 1)
    rel = hits[:, :width] & (ranks[None, :] <= r[:, None])
    precision = np.cumsum(rel, axis=1) / ranks[None, :]
    return (rel * precision).sum(axis=1) / np.maximum(r, 1)


def _scores(emb: np.ndarray, lab: np.ndarray, ks: tuple[int, ...], with_map: bool) -> dict:
    """Recall@k per k and (optionally) MAP@R, from one neighbour search."""
    _, dense, counts = np.unique(lab, return_inverse=True, return_counts=True)
    dense = dense.reshape(-1)
    relevant = counts[dense] - 1  # R: the query's other same-label items
    if with_map and relevant.max() < 1:
        raise ValueError("MAP@R is undefined: every label occurs only once")
    k_max = max(max(ks, default=0), int(relevant.max()) if with_map else 0)
    first_hit = np.empty(emb.shape[0], dtype=np.int64)
    ap = np.zeros(emb.shape[0])
    for start, nbrs in _neighbour_blocks(_l2_normalise(emb), k_max):
        rows = slice(start, start + nbrs.shape[0])
        hits = dense[nbrs] == dense[rows, None]
        found = hits.any(axis=1)
        first_hit[rows] = np.where(found, hits.argmax(axis=1), k_max)
        if with_map:
            ap[rows] = _average_precision_at_r(hits, relevant[rows])
    out: dict = {k: float(np.mean(first_hit < k)) for k in ks}
    if with_map:
        # Queries with no other member of their class are left out, as in PML.
        out["MAP@R"] = float(ap[relevant > 0].mean())
    return out


def recall_at_k(embeddings: Any, labels: Any, ks: Sequence[int] = (1, 2, 4, 8)) -> dict[int, float]:
    """Recall@k for each k: fraction of queries with a same-label item among their k nearest."""
    emb = _check_embeddings(embeddings)
    lab = _check_labels(labels, emb.shape[0])
    return _scores(emb, lab, _check_ks(ks, emb.shape[0]), with_map=False)


def map_at_r(embeddings: Any, labels: Any) -> float:
    """MAP@R over queries whose class has another member (PML's definition, cosine similarity)."""
    emb = _check_embeddings(embeddings)
    lab = _check_labels(labels, emb.shape[0])
    return _scores(emb, lab, (), with_map=True)["MAP@R"]


def retrieval_metrics(
    embeddings: Any, labels: Any, ks: Sequence[int], with_map: bool = True
) -> dict[str, float]:
    """R@k (fractions; ks beyond n - 1 are skipped) and optionally MAP@R, from one search."""
    emb = _check_embeddings(embeddings)
    lab = _check_labels(labels, emb.shape[0])
    usable = _check_ks([k for k in ks if k <= emb.shape[0] - 1], emb.shape[0])
    scores = _scores(emb, lab, usable, with_map)
    return {(f"R@{k}" if isinstance(k, int) else k): v for k, v in scores.items()}
