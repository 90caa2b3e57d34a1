"""Show a few test queries and their top-k neighbours from a run's final checkpoint.

Usage: python scripts/show_retrievals.py <run_dir> [--queries 6] [--k 8] [--seed 0] [--out PNG]

Rebuilds the model from <run_dir>/results.json, loads <run_dir>/checkpoints/last.pt,
embeds the test split with the run's eval.feature (and eval.flip), and retrieves by cosine
similarity, the query itself excluded. Each row of the PNG (default <run_dir>/retrievals.png)
is one query (blue frame) and its neighbours, most similar first, framed green (same class)
or red (other class). Images are the original files, not the normalised network inputs.
Queries are drawn with --seed from as many different classes as possible. The neighbours
are also printed, one query a line: test-split index (class id) same|other. The drawing
(tiles, layout, frame colours) is dml.plots.grid's, shared with scripts/search.py.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dml.cli import run_command
from dml.errors import DmlError
from dml.launch import ROOT
from dml.logging.figures import write_png
from dml.logging.runs import RESULTS_FILE, read_run_results
from dml.plots.grid import load_tile, render


class RetrievalError(DmlError):
    """A problem with the run directory or what it needs, reported as one line."""


class Neighbours(NamedTuple):
    """Top-k neighbours of each query: indices, same-class flags, cosine similarities."""

    indices: np.ndarray  # (q, k) int, most similar first
    same: np.ndarray  # (q, k) bool
    similarity: np.ndarray  # (q, k) float


# ------------------------------------------------------------------ retrieval


def nearest_neighbours(
    embeddings: np.ndarray, labels: Sequence[int] | np.ndarray, queries: Sequence[int], k: int
) -> Neighbours:
    """Top-k by cosine similarity for each query, itself excluded; ties go to the lower index."""
    x = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    queries = np.asarray(queries, dtype=int)
    if not 1 <= k <= len(x) - 1:
        raise ValueError(f"k={k} must be between 1 and the number of items - 1 ({len(x) - 1})")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sims = x[queries] @ x.T
    sims[np.arange(len(queries)), queries] = -np.inf  # a query is not its own neighbour
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return Neighbours(
        indices=order,
        same=labels[order] == labels[queries][:, None],
        similarity=np.take_along_axis(sims, order, axis=1),
    )


def pick_queries(labels: Sequence[int] | np.ndarray, n: int, seed: int) -> list[int]:
    """n distinct items drawn with seed, each from a new class until every class has one."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    members = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in classes}
    picked: list[int] = []
    # Round-robin over the shuffled classes, so rows show different classes first.
    while len(picked) < min(n, len(labels)):
        for c in classes:
            if members[c] and len(picked) < n:
                picked.append(int(members[c].pop(0)))
    return picked


# ------------------------------------------------------------------ loading


def read_run(run_dir: Path) -> tuple[dict[str, Any], Path]:
    """results.json of a completed run and its final checkpoint path."""
    results = read_run_results(run_dir)
    if not isinstance(results.get("config"), dict):
        raise RetrievalError(f"{run_dir / RESULTS_FILE} holds no run config")
    status = results.get("status")
    if status != "completed":
        why = f": {results['error']}" if results.get("error") else ""
        raise RetrievalError(f"run {run_dir} did not complete (status {status}){why}")
    checkpoint = run_dir / "checkpoints" / "last.pt"
    if not checkpoint.is_file():
        raise RetrievalError(
            f"no checkpoint {checkpoint} (was the run made with trainer.save_checkpoints=false?)"
        )
    return results, checkpoint


def run_recall(results: dict[str, Any]) -> str:
    """The run's last-epoch test R@1 (the epoch of last.pt, not a selected one), as text."""
    value = ((results.get("metrics") or {}).get("final") or {}).get("R@1")
    return f"final test R@1 {100 * value:.1f}" if isinstance(value, (int, float)) else "no R@1"


def embed_test_split(
    config: dict[str, Any], checkpoint: Path
) -> tuple[np.ndarray, list[int], list[Path], str]:
    """Test-split features from the checkpoint, original class ids, image paths, feature name."""
    from omegaconf.errors import OmegaConfBaseException
    from torch.utils.data import DataLoader

    from dml.config import with_schema_defaults
    from dml.data import ImageListDataset, load_retrieval_data
    from dml.data.transforms import eval_transform
    from dml.evaluation.embed import compute_embeddings
    from dml.models import build_model
    from dml.training.checkpoint import load_checkpoint
    from dml.training.device import pick_device

    cfg = with_schema_defaults(config)
    feature = str(cfg.eval.get("feature", "embedding"))
    try:
        data = load_retrieval_data(cfg.dataset)
        # the checkpoint replaces every weight: no pretrained weights are loaded (no
        # download, no synthetic pre-training just to overwrite them)
        with contextlib.redirect_stdout(io.StringIO()):  # build_model's summary line
            model = build_model(cfg.model, cfg.pruning, cfg.dataset.image_size)
        state = load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        device = pick_device("auto")
        loader = DataLoader(
            ImageListDataset(data.test, eval_transform(cfg.dataset)),
            batch_size=int(cfg.eval.get("batch_size", 128)),
        )
        emb, _ = compute_embeddings(
            model.to(device), loader, device, bool(cfg.eval.get("flip", False)), feature
        )
    except DmlError as exc:
        raise RetrievalError(_first_line(exc)) from None
    except (OmegaConfBaseException, RuntimeError, KeyError, ValueError, OSError) as exc:
        raise RetrievalError(
            f"cannot rebuild the model from {checkpoint}: {_first_line(exc)}"
        ) from None
    return emb, list(data.test.labels), list(data.test.paths), feature


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def print_listing(found: Neighbours, labels: np.ndarray, queries: Sequence[int]) -> None:
    """Each query's neighbours, one query a line: index (class id) same|other; then precision."""
    for r, q in enumerate(queries):
        shown = ", ".join(
            f"{i} ({labels[i]}) {'same' if s else 'other'}"
            for i, s in zip(found.indices[r], found.same[r])
        )
        print(f"query {q} (class {labels[q]}): {shown}")
    k = found.indices.shape[1]
    print(f"precision@{k} of these queries: {found.same.mean():.3f}")


# --------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="run directory holding results.json")
    parser.add_argument("--queries", type=int, default=6, help="number of query rows")
    parser.add_argument("--k", type=int, default=8, help="neighbours shown per query")
    parser.add_argument("--seed", type=int, default=0, help="seed of the query draw")
    parser.add_argument("--out", type=Path, default=None, help="PNG (default <run>/retrievals.png)")
    return parser.parse_args(argv)


def show(args: argparse.Namespace) -> int:
    """Draw and list the retrievals the options ask for; a DmlError is the user's mistake."""
    # Resolve before chdir: the runs' configs hold data paths relative to the project root.
    run_dir = args.run_dir.resolve()
    out = (args.out or run_dir / "retrievals.png").resolve()
    previous = Path.cwd()
    try:
        if args.queries < 1 or args.k < 1:
            raise RetrievalError("--queries and --k must be at least 1")
        results, checkpoint = read_run(run_dir)
        os.chdir(ROOT)
        emb, labels, paths, feature = embed_test_split(results["config"], checkpoint)
        if len(labels) < 2:
            raise RetrievalError(f"the test split has {len(labels)} image(s): nothing to retrieve")
        k = min(args.k, len(labels) - 1)
        queries = pick_queries(labels, args.queries, args.seed)
        found = nearest_neighbours(emb, labels, queries, k)
        label_arr = np.asarray(labels)
        tiles = [
            [load_tile(paths[i]) for i in [q, *found.indices[r]]] for r, q in enumerate(queries)
        ]
        title = (
            f"{run_dir.parent.name}/{run_dir.name} ({run_recall(results)}): {feature} features, "
            f"cosine, top {k} of {len(labels)} test images; green same class, red other"
        )
        captions = [
            [f"query\nclass {labels[q]}"]
            + [
                f"#{j + 1} class {label_arr[i]}\ncos {found.similarity[r, j]:.3f}"
                for j, i in enumerate(found.indices[r])
            ]
            for r, q in enumerate(queries)
        ]
        png = render(tiles, found.same.tolist(), captions, title)
        print_listing(found, label_arr, queries)
        write_png(png, out)  # out is absolute: the chdir above does not move it
    finally:
        os.chdir(previous)
    print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Draw the retrieval grid of a run; return the exit code."""
    # RetrievalError, read_run_results' and write_png's own
    return run_command(show, parse_args, argv, code=2)
