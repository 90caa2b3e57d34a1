"""Retrieval metrics on embeddings: Recall@K (exact faiss search) and MAP@R (via PML)."""

from __future__ import annotations

import logging
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


def _first_hit_ranks(emb: np.ndarray, labels: np.ndarray, k_max: int) -> np.ndarray:
    """Per query, the 0-based rank of the first same-label neighbour, or k_max if none."""
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    ranks = np.empty(emb.shape[0], dtype=np.int64)
    for start in range(0, emb.shape[0], _QUERY_CHUNK):
        queries = emb[start : start + _QUERY_CHUNK]
        _, nbrs = index.search(queries, k_max + 1)
        nbrs = _drop_self(nbrs, start)
        hits = labels[nbrs] == labels[start : start + len(queries), None]
        ranks[start : start + len(queries)] = np.where(hits.any(axis=1), hits.argmax(axis=1), k_max)
    return ranks


def recall_at_k(embeddings: Any, labels: Any, ks: Sequence[int] = (1, 2, 4, 8)) -> dict[int, float]:
    """Recall@k for each k: fraction of queries with a same-label item among their k nearest."""
    emb = _check_embeddings(embeddings)
    lab = _check_labels(labels, emb.shape[0])
    ks = _check_ks(ks, emb.shape[0])
    ranks = _first_hit_ranks(_l2_normalise(emb), lab, max(ks))
    return {k: float(np.mean(ranks < k)) for k in ks}


def map_at_r(embeddings: Any, labels: Any) -> float:
    """MAP@R over queries whose class has another member, computed by pytorch-metric-learning."""
    # Imported lazily: PML pulls in sklearn and patches faiss, which recall_at_k does not need.
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import FaissKNN

    # its INFO lines ("running k-nn with k=...") would interleave with the epoch lines
    logging.getLogger("PML").setLevel(logging.WARNING)

    emb = _check_embeddings(embeddings)
    lab = _check_labels(labels, emb.shape[0])
    # PML casts labels to float32; dense ids keep large ints or strings exact.
    _, dense, counts = np.unique(lab, return_inverse=True, return_counts=True)
    if counts.max() < 2:
        raise ValueError("MAP@R is undefined: every label occurs only once")
    calc = AccuracyCalculator(
        include=("mean_average_precision_at_r",),
        k="max_bin_count",
        device=torch.device("cpu"),
        # Inner product on unit vectors is cosine similarity, matching recall_at_k.
        knn_func=FaissKNN(reset_before=True, reset_after=True, index_init_fn=faiss.IndexFlatIP),
    )
    emb_t = torch.from_numpy(_l2_normalise(emb))
    lab_t = torch.from_numpy(dense.reshape(-1).astype(np.int64))
    acc = calc.get_accuracy(emb_t, lab_t, emb_t, lab_t, ref_includes_query=True)
    return float(acc["mean_average_precision_at_r"])
