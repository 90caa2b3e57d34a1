"""Show a few test queries and their top-k neighbours from a run's final checkpoint.

Usage: python scripts/show_retrievals.py <run_dir> [--queries 6] [--k 8] [--seed 0] [--out PNG]

Each row of the PNG (default <run_dir>/retrievals.png) is one query (blue frame) and its
neighbours by cosine similarity, framed green (same class) or red (other class); the
neighbours are also printed, one query a line. How the run is embedded and the queries
drawn: dml.plots.retrievals.
"""

from dml.plots.retrievals import main

if __name__ == "__main__":
    raise SystemExit(main())
