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

from dml.inference.commands.search import main

if __name__ == "__main__":
    raise SystemExit(main())
