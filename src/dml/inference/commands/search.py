"""Search a saved index (scripts/index.py) for the nearest images of a query image or folder.

Usage: python scripts/search.py <index dir> [<query image or folder>] [--k 8]
           [--png out.png] [--json out.json] [--eval] [--run <run dir>] [--device auto]

The queries are embedded with the run and feature that built the index (index.json names
them; --run gives the run's new place if it moved: its checkpoint must be the same file).
Prints each query's k nearest images with their cosine scores (and classes, for an index of
class sub-folders) as a table; --png draws them as scripts/show_retrievals.py does (query in
blue; green same class, red other, grey when the query's class is unknown; the first
16 queries); --json writes every query's neighbours. --eval prints Recall@K and MAP@R of the
indexed images against each other (each one's own entry excluded), computed by the same
functions as training's evaluation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dml.files import write_json
from dml.inference.cli import OneLineParser, run_main
from dml.inference.commands.common import timed


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("index_dir", type=Path, help="index directory written by scripts/index.py")
    p.add_argument("query", type=Path, nargs="?", help="query image, or folder of images")
    p.add_argument("--k", type=int, default=8, help="neighbours per query (default 8)")
    p.add_argument("--png", type=Path, default=None, help="write a grid of the results")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    p.add_argument("--eval", action="store_true", help="Recall@K, MAP@R of the index itself")
    p.add_argument("--run", type=Path, default=None, help="the index's run, if it has moved")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    return p


def search_index(args: argparse.Namespace) -> int:
    """Embed the queries, search, print and write the results; evaluate with --eval."""
    from dml.errors import DmlError
    from dml.inference import embed_folder, evaluate_index, open_index, run_for_index, search
    from dml.inference.search import format_table, query_labels, render_results, results_json
    from dml.logging.figures import write_png

    if args.query is None and not args.eval:
        raise DmlError("give a query image or folder, or --eval")
    if args.query is None and args.png is not None:
        raise DmlError("--png draws query results: give a query image or folder")
    index = open_index(args.index_dir)
    metrics = evaluate_index(index) if args.eval else None
    paths, labels, ranked = [], [], None
    if args.query is not None:
        if not 1 <= args.k <= index.count:  # before the model is loaded and queries embedded
            raise DmlError(f"--k {args.k}: the index holds {index.count} image(s)")
        run = run_for_index(index, args.run, args.device)
        (found, embedded), embedding_s = timed(embed_folder, run, args.query)
        ranked, search_s = timed(search, index, embedded.embeddings, args.k)
        paths = embedded.paths
        labels = query_labels(index, found, paths)
        print(format_table(paths, labels, ranked))
        print(
            f"{len(paths)} quer{'y' if len(paths) == 1 else 'ies'} against {index.count} "
            f"images: embedding {embedding_s:.3f} s, search {1000 * search_s:.2f} ms"
        )
    if metrics is not None:
        shown = "  ".join(f"{name} {100 * value:.2f}" for name, value in metrics.items())
        print(f"index against itself ({index.count} images, %): {shown}")
    if args.png is not None and ranked is not None:
        print(write_png(render_results(index, paths, labels, ranked), args.png.resolve()))
    if args.json is not None:
        out = {"index": str(index.directory), "metrics": metrics, "queries": []}
        if ranked is not None:
            out = results_json(index, paths, labels, ranked, metrics)
        write_json(args.json.resolve(), out)
        print(args.json.resolve())
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (a usage mistake: one `error:` line and exit 2)."""
    return parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Search an index; return the exit code (2 with one `error:` line for a mistake)."""
    return run_main(search_index, parser(), argv)
