"""Search a saved index: k nearest images of query embeddings, their labels, and evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dml.errors import DmlError
from dml.inference.embed import ImageList, folder_classes, l2_normalise
from dml.inference.index import ImageIndex, check_same_model
from dml.inference.model import LoadedRun, load_run

PNG_ROWS = 16  # query rows drawn at most: the console and JSON hold every query


@dataclass
class Ranked:
    """The k nearest index images of each query, most similar first."""

    indices: np.ndarray  # (q, k) rows of the index
    scores: np.ndarray  # (q, k) inner products of L2-normalised rows: cosine similarity
    paths: list[list[str]]
    labels: list[list[str]] | None  # class names; None for an unlabelled index


def search(index: ImageIndex, queries: np.ndarray, k: int) -> Ranked:
    """The k nearest index images of each query row (L2-normalised here, as the index's
    rows are), by exact inner product; ties keep faiss's order (lower index first)."""
    if not 1 <= k <= index.count:
        raise DmlError(f"k={k}: the index holds {index.count} image(s); choose 1 <= k <= that")
    queries = np.atleast_2d(np.asarray(queries))
    dim = index.faiss_index.d
    if queries.shape[1] != dim:
        raise DmlError(f"queries are {queries.shape[1]}-d but the index holds {dim}-d features")
    scores, indices = index.faiss_index.search(l2_normalise(queries), k)
    names = index.label_names()
    return Ranked(
        indices=indices,
        scores=scores,
        paths=[[index.paths[i] for i in row] for row in indices],
        labels=None if names is None else [[names[i] for i in row] for row in indices],
    )


def run_for_index(
    index: ImageIndex, run_dir: str | Path | None = None, device: str = "auto"
) -> LoadedRun:
    """The run that embeds queries for index: the one it names, or run_dir (which must hold
    the same checkpoint file); the index's checkpoint and feature either way."""
    where = Path(run_dir) if run_dir is not None else Path(index.manifest["run"])
    if run_dir is None and not where.is_dir():
        raise DmlError(
            f"the index's run {where} is not found; give the run that built it with --run"
        )
    run = load_run(where, index.manifest["checkpoint"], device, feature=index.feature)
    check_same_model(index, run)
    return run


def query_labels(index: ImageIndex, queries: ImageList, paths: Sequence[Path]) -> list[str | None]:
    """Each query's class: its index label when it is an indexed image, else its sub-folder's
    name when the query folder has one sub-folder per class, else None (unknown)."""
    names = index.label_names()
    if names is None:
        return [None] * len(paths)
    indexed = dict(zip(index.paths, names))
    listed = folder_classes(queries.root, queries.paths)
    of_folder = dict(zip(queries.paths, listed)) if listed is not None else {}
    return [indexed.get(str(p), of_folder.get(Path(p))) for p in paths]


def evaluate_index(index: ImageIndex, ks: Sequence[int] | None = None) -> dict[str, float]:
    """Recall@K and MAP@R of the index's images against each other (each query's own entry
    excluded), by dml.evaluation's retrieval_metrics, as training evaluates."""
    from dml.evaluation.recall import retrieval_metrics

    if index.labels is None:
        raise DmlError(
            f"index {index.directory} has no labels (its folder had no class sub-folders): "
            "--eval needs them"
        )
    ks = list(ks or index.manifest.get("ks") or [1, 2, 4, 8])
    try:
        return retrieval_metrics(index.embeddings, index.labels, ks, with_map=True)
    except ValueError as exc:  # too few images, or every class a single image
        raise DmlError(f"cannot evaluate index {index.directory}: {exc}") from None


def format_table(query_paths: Sequence[Path], labels: Sequence[str | None], ranked: Ranked) -> str:
    """The results as console text: per query a header line and one line per neighbour
    (rank, cosine score, class, path, and same/other when the query's class is known);
    paths inside the working folder are shown relative to it (the JSON keeps them whole)."""
    classes = ranked.labels or [["-"] * len(row) for row in ranked.paths]
    width = max(len("class"), *(len(c) for row in classes for c in row))
    lines = []
    for q, path in enumerate(query_paths):
        known = f" (class {labels[q]})" if labels[q] is not None else ""
        lines.append(f"query {_shown(path)}{known}")
        lines.append(f"  {'rank':>4}  {'score':>7}  {'class':<{width}}  image")
        for j, (score, hit) in enumerate(zip(ranked.scores[q], ranked.paths[q])):
            cls = classes[q][j]
            mark = _mark(labels[q], cls if ranked.labels is not None else None)
            lines.append(f"  {j + 1:>4}  {score:7.4f}  {cls:<{width}}  {_shown(hit)}{mark}")
    return "\n".join(lines)


def _shown(path: str | Path) -> str:
    """A path as the console shows it: relative to the working folder when inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _mark(query: str | None, hit: str | None) -> str:
    if query is None or hit is None:
        return ""
    return "  same" if query == hit else "  other"


def results_json(
    index: ImageIndex,
    query_paths: Sequence[Path],
    labels: Sequence[str | None],
    ranked: Ranked,
    metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The results as a JSON-ready dict: the index, and per query its ranked neighbours."""
    queries = []
    for q, path in enumerate(query_paths):
        hits = [
            {
                "rank": j + 1,
                "path": ranked.paths[q][j],
                "score": float(ranked.scores[q, j]),
                "index": int(ranked.indices[q, j]),
                "label": ranked.labels[q][j] if ranked.labels is not None else None,
            }
            for j in range(ranked.indices.shape[1])
        ]
        queries.append({"path": str(path), "label": labels[q], "neighbours": hits})
    out: dict[str, Any] = {
        "index": str(index.directory),
        "run": index.manifest["run"],
        "checkpoint": index.manifest["checkpoint"],
        "feature": index.feature,
        "k": int(ranked.indices.shape[1]),
        "queries": queries,
    }
    if metrics is not None:
        out["metrics"] = metrics
    return out


def render_results(
    index: ImageIndex,
    query_paths: Sequence[Path],
    labels: Sequence[str | None],
    ranked: Ranked,
    rows: int = PNG_ROWS,
) -> bytes:
    """A PNG grid as scripts/show_retrievals.py draws: each query (blue) and its neighbours,
    green same class, red other, grey when the query's class is unknown; the first rows
    queries only."""
    from dml.plots.grid import load_tile, render

    shown = range(min(rows, len(query_paths)))
    tiles = [[load_tile(query_paths[q]), *map(load_tile, ranked.paths[q])] for q in shown]
    same = [
        [
            None if labels[q] is None or ranked.labels is None else hit == labels[q]
            for hit in (ranked.labels[q] if ranked.labels is not None else ranked.paths[q])
        ]
        for q in shown
    ]
    captions = [
        [f"query\n{_short(labels[q] or Path(query_paths[q]).name)}"]
        + [
            f"#{j + 1} cos {ranked.scores[q, j]:.3f}\n{_caption_label(ranked, q, j)}"
            for j in range(ranked.indices.shape[1])
        ]
        for q in shown
    ]
    k = ranked.indices.shape[1]
    title = (
        f"{index.directory.name}: top {k} of {index.count} images, {index.feature} features, "
        f"cosine; {len(tiles)} of {len(query_paths)} queries"
        + ("; green same class, red other" if index.labels is not None else "")
    )
    return render(tiles, same, captions, title)


def _caption_label(ranked: Ranked, q: int, j: int) -> str:
    if ranked.labels is not None:
        return _short(ranked.labels[q][j])
    return _short(Path(ranked.paths[q][j]).name)


def _short(text: str, width: int = 19) -> str:
    """text cut to width characters (a tile's caption fits about that many)."""
    return text if len(text) <= width else text[: width - 1] + "…"
