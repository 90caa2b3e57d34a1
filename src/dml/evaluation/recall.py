"""Retrieval metrics on embeddings: Recall@K and MAP@R from one exact faiss kNN search.

Two modes. Without a gallery every item is a query searched against all the others (its own
entry excluded), as on CUB, Cars and SOP. With a gallery (In-Shop) the embeddings are the
queries and the index holds only the gallery; nothing is excluded, so a gallery item identical
to a query is an ordinary neighbour, and labels are compared across the two sets.

Every metric reads the same neighbour lists: one search of the largest k any metric needs
(max(ks) for Recall@K, the largest R for MAP@R, R being the query's relevant items: the other
members of its class, or its class's gallery items), run in query blocks so memory stays
O(block * k). Similarity is cosine (rows L2-normalised). pytorch-metric-learning's
AccuracyCalculator is the reference the tests compare against; it is not called here because
it would search a second time.

Two search backends give the same neighbours up to ties: faiss (exact inner product; on the GPU
when faiss-gpu sees one) for arrays and CPU tensors, and an exact blocked matrix product with
`torch.topk` on the tensors' own device for CUDA tensors when faiss has no GPU (faiss-cpu is our
dependency), so embeddings made on a GPU are searched there instead of being copied back. The
hits and AP@R are computed with torch on the same device either way.
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
# The torch search holds one (block x searched items) similarity matrix at a time: at most this
# many float32 entries (1 GiB), so 60,000 items are searched 4,473 queries at a time.
_TORCH_BLOCK_ENTRIES = 2**28
#: search backends: auto (torch for CUDA tensors when faiss has no GPU, else faiss), faiss, torch
SEARCHES = ("auto", "faiss", "torch")


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


Array = np.ndarray | torch.Tensor  # host arrays for faiss, device tensors for the torch search


def _stays_on_device(x: Any, search: str) -> bool:
    """Whether x is searched where it lies (torch) rather than copied to the host for faiss."""
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    if search == "auto":
        return isinstance(x, torch.Tensor) and x.is_cuda and _gpu_count() == 0
    return search == "torch"


def _check_embeddings(
    embeddings: Any, name: str = "embeddings", min_items: int = 2, on_device: bool = False
) -> Array:
    """The embeddings as float32 after shape, dtype and finiteness checks: a numpy array, or
    with on_device a tensor on the embeddings' own device."""
    if on_device:
        emb = embeddings.detach() if isinstance(embeddings, torch.Tensor) else None
        if emb is None:
            emb = torch.from_numpy(_to_numpy(embeddings, name))
        dtype_ok = emb.is_floating_point() or emb.dtype in _INT_DTYPES
    else:
        emb = _to_numpy(embeddings, name)
        dtype_ok = np.issubdtype(emb.dtype, np.floating) or np.issubdtype(emb.dtype, np.integer)
    if emb.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {tuple(emb.shape)}")
    if not dtype_ok:
        raise ValueError(f"{name} must be real numbers, got dtype {emb.dtype}")
    if emb.shape[0] < min_items:
        raise ValueError(
            f"need at least {min_items} {name} item(s) to evaluate retrieval, got {emb.shape[0]}"
        )
    if emb.shape[1] < 1:
        raise ValueError(f"{name} must have at least 1 dimension, got 0")
    # float32 because that is what faiss searches; values beyond its range become inf here.
    if on_device:
        emb = emb.to(torch.float32)
        finite = bool(torch.isfinite(emb).all())
    else:
        with np.errstate(over="ignore"):
            emb = emb.astype(np.float32, copy=False)
        finite = bool(np.isfinite(emb).all())
    if not finite:
        raise ValueError(f"{name} contain NaN or inf (or values beyond float32 range)")
    return emb


_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _check_labels(labels: Any, n: int, of: str = "embeddings") -> Array:
    """Return the labels of `of` (embeddings or gallery) as a 1-D array of length n."""
    name = "labels" if of == "embeddings" else f"{of}_labels"
    lab = labels.detach() if isinstance(labels, torch.Tensor) else _to_numpy(labels, name)
    if lab.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(lab.shape)}")
    if lab.shape[0] != n:
        raise ValueError(f"{of} and {name} lengths differ: {n} vs {lab.shape[0]}")
    return lab


Gallery = tuple[Array, Array]  # (embeddings, labels) searched instead of the queries


def _check_inputs(
    embeddings: Any, labels: Any, gallery: Any, gallery_labels: Any, search: str = "faiss"
) -> tuple[Array, Array, Gallery | None]:
    """Checked queries, their labels and the checked gallery (None without one)."""
    if (gallery is None) != (gallery_labels is None):
        raise ValueError("gallery and gallery_labels must be given together")
    on_device = _stays_on_device(embeddings, search)
    # Against a gallery a single query is enough; searching a set against itself needs two.
    emb = _check_embeddings(embeddings, min_items=2 if gallery is None else 1, on_device=on_device)
    lab = _check_labels(labels, emb.shape[0])
    if gallery is None:
        return emb, lab, None
    gal = _check_embeddings(gallery, "gallery", min_items=1, on_device=on_device)
    if on_device:
        gal = gal.to(emb.device)
    if gal.shape[1] != emb.shape[1]:
        raise ValueError(
            f"gallery dimension {gal.shape[1]} differs from the embeddings' {emb.shape[1]}"
        )
    return emb, lab, (gal, _check_labels(gallery_labels, gal.shape[0], "gallery"))


def _k_limit(emb: np.ndarray, gallery: Gallery | None) -> int:
    """The largest k a search can fill: n - 1 (self excluded), or the gallery's size."""
    return emb.shape[0] - 1 if gallery is None else gallery[0].shape[0]


def _check_ks(ks: Sequence[int], limit: int, in_gallery: bool = False) -> tuple[int, ...]:
    """Return ks as a tuple of positive ints, each at most limit (from _k_limit)."""
    ks = tuple(ks) if not isinstance(ks, int | np.integer) else (ks,)
    if not ks:
        raise ValueError("ks must contain at least one k")
    for k in ks:
        # bool is an int subclass but True/False as k is surely a mistake.
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"ks must be positive integers, got {k!r}")
    if max(ks) > limit:
        why = (
            f"the number of gallery items ({limit})"
            if in_gallery
            else f"n-1={limit} (each query's own entry is excluded)"
        )
        raise ValueError(f"max(ks)={max(ks)} exceeds {why}")
    return tuple(int(k) for k in ks)


def _l2_normalise(emb: Array) -> Array:
    """Return a new C-contiguous float32 array with unit-norm rows (zero rows stay zero)."""
    if isinstance(emb, torch.Tensor):
        out_t = torch.empty(emb.shape, dtype=torch.float32, device=emb.device)
        for start in range(0, emb.shape[0], _NORM_CHUNK):
            block = emb[start : start + _NORM_CHUNK].double()
            norms = block.norm(dim=1, keepdim=True)
            out_t[start : start + _NORM_CHUNK] = block / norms.clamp_min(1e-12)
        return out_t
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


def _neighbour_blocks(emb: np.ndarray, k: int, gallery: np.ndarray | None = None):
    """Yield (first query, (rows, k) neighbour indices) per query block: into gallery, or
    without one into emb itself with each query's own entry removed."""
    own = gallery is None
    # One extra neighbour when searching emb itself: the query's own entry, dropped below.
    index = _flat_ip_index(emb if own else gallery, k + own)
    for start in range(0, emb.shape[0], _QUERY_CHUNK):
        with _blas_tiles():
            _, nbrs = index.search(emb[start : start + _QUERY_CHUNK], k + own)
        yield start, _drop_self(nbrs, start) if own else nbrs


def _torch_neighbour_blocks(emb: torch.Tensor, k: int, gallery: torch.Tensor | None = None):
    """As _neighbour_blocks, by an exact blocked matrix product and torch.topk on emb's device;
    without a gallery each query's own entry is masked out before the top k are taken."""
    searched = emb if gallery is None else gallery
    chunk = max(1, min(_QUERY_CHUNK, _TORCH_BLOCK_ENTRIES // searched.shape[0]))
    for start in range(0, emb.shape[0], chunk):
        sims = emb[start : start + chunk] @ searched.T
        if gallery is None:
            rows = torch.arange(sims.shape[0], device=sims.device)
            sims[rows, rows + start] = -torch.inf
        yield start, sims.topk(k, dim=1).indices


def _average_precision_at_r(hits: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """AP@R per row: hits (rows, >= max r) ranked relevance, r the row's number of relevant."""
    width = int(r.max()) if r.numel() else 0
    ranks = torch.arange(1, width + 1, device=hits.device, dtype=torch.float64)
    rel = hits[:, :width] & (ranks[None, :] <= r[:, None])
    precision = rel.cumsum(dim=1) / ranks[None, :]
    return (rel * precision).sum(dim=1) / r.clamp_min(1)


def _codes(lab: Array, gallery_labels: Array | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels as int64 tensors, one code space over queries and gallery (equal labels, equal
    codes); numpy labels of any dtype are coded on the host."""
    n = lab.shape[0]
    if isinstance(lab, torch.Tensor):
        joint = lab
        if gallery_labels is not None:
            joint = torch.cat([lab, torch.as_tensor(gallery_labels, device=lab.device)])
        dense = torch.unique(joint, return_inverse=True)[1].reshape(-1)
        return dense[:n], None if gallery_labels is None else dense[n:]
    joint = lab if gallery_labels is None else np.concatenate([lab, _to_numpy(gallery_labels, "")])
    _, dense = np.unique(joint, return_inverse=True)
    dense = torch.from_numpy(dense.reshape(-1).astype(np.int64))
    return dense[:n], None if gallery_labels is None else dense[n:]


def _label_space(
    lab: torch.Tensor, gallery_labels: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dense query labels, dense searched-item labels and each query's R (relevant items)."""
    if gallery_labels is None:
        _, dense, counts = torch.unique(lab, return_inverse=True, return_counts=True)
        return dense, dense, counts[dense] - 1  # R: the query's other same-label items
    # One label space over the union, so that equal labels match across the two sets.
    _, dense = torch.unique(torch.cat([lab, gallery_labels]), return_inverse=True)
    query, items = dense[: lab.shape[0]], dense[lab.shape[0] :]
    return query, items, torch.bincount(items, minlength=int(dense.max()) + 1)[query]


def _scores(
    emb: Array,
    lab: Array,
    ks: tuple[int, ...],
    with_map: bool,
    gallery: Gallery | None = None,
) -> dict:
    """Recall@k per k and (optionally) MAP@R, from one neighbour search."""
    on_device = isinstance(emb, torch.Tensor)
    device = emb.device if on_device else torch.device("cpu")
    codes, gallery_codes = _codes(lab, None if gallery is None else gallery[1])
    query, items, relevant = _label_space(codes.to(device), _to(gallery_codes, device))
    if with_map and relevant.max() < 1:
        why = "no query's label is in the gallery" if gallery else "every label occurs only once"
        raise ValueError(f"MAP@R is undefined: {why}")
    k_max = max(max(ks, default=0), int(relevant.max()) if with_map else 0)
    first_hit = torch.empty(emb.shape[0], dtype=torch.int64, device=device)
    ap = torch.zeros(emb.shape[0], dtype=torch.float64, device=device)
    searched = None if gallery is None else _l2_normalise(gallery[0])
    search = _torch_neighbour_blocks if on_device else _neighbour_blocks
    for start, nbrs in search(_l2_normalise(emb), k_max, searched):
        nbrs = torch.as_tensor(nbrs, device=device)
        rows = slice(start, start + nbrs.shape[0])
        hits = items[nbrs] == query[rows, None]
        found = hits.any(dim=1)
        first_hit[rows] = torch.where(found, hits.to(torch.uint8).argmax(dim=1), k_max)
        if with_map:
            ap[rows] = _average_precision_at_r(hits, relevant[rows])
    out: dict = {k: float((first_hit < k).double().mean()) for k in ks}
    if with_map:
        # Queries with no relevant item (R = 0) are left out, as in PML.
        out["MAP@R"] = float(ap[relevant > 0].mean())
    return out


def _to(x: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if x is None else x.to(device)


def recall_at_k(
    embeddings: Any,
    labels: Any,
    ks: Sequence[int] = (1, 2, 4, 8),
    gallery: Any = None,
    gallery_labels: Any = None,
    search: str = "auto",
) -> dict[int, float]:
    """Recall@k per k: fraction of queries with a same-label item among their k nearest."""
    emb, lab, gal = _check_inputs(embeddings, labels, gallery, gallery_labels, search)
    return _scores(emb, lab, _check_ks(ks, _k_limit(emb, gal), gal is not None), False, gal)


def map_at_r(
    embeddings: Any,
    labels: Any,
    gallery: Any = None,
    gallery_labels: Any = None,
    search: str = "auto",
) -> float:
    """MAP@R over queries with R > 0 relevant items (PML's definition, cosine similarity)."""
    emb, lab, gal = _check_inputs(embeddings, labels, gallery, gallery_labels, search)
    return _scores(emb, lab, (), True, gal)["MAP@R"]


def retrieval_metrics(
    embeddings: Any,
    labels: Any,
    ks: Sequence[int],
    with_map: bool = True,
    gallery: Any = None,
    gallery_labels: Any = None,
    search: str = "auto",
) -> dict[str, float]:
    """R@k (fractions; ks no search can fill are skipped) and optionally MAP@R, in one search.

    search: "auto" searches CUDA tensors on their GPU with torch when faiss has none, and
    everything else with faiss; "faiss" or "torch" force one backend (torch on the inputs'
    device, the CPU for arrays).
    """
    emb, lab, gal = _check_inputs(embeddings, labels, gallery, gallery_labels, search)
    limit = _k_limit(emb, gal)
    usable = _check_ks([k for k in ks if k <= limit], limit, gal is not None)
    scores = _scores(emb, lab, usable, with_map, gal)
    return {(f"R@{k}" if isinstance(k, int) else k): v for k, v in scores.items()}
