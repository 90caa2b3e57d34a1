"""Heatmap of test Recall@1 over AutoLR's alpha and beta (supplement, Figure 1).

Usage: python scripts/plot_alpha_beta.py <sweep_dir> [--out PNG] [--metric R@1]
           [--dataset cub200]

Reads the AutoLR runs' results.json below <sweep_dir>, averages the seeds of each (alpha,
beta), prints the grid as a table and writes the PNG (default <sweep_dir>/alpha_beta.png).
Which number a run gives and how cells are marked: dml.plots.alpha_beta.
"""

from dml.plots.alpha_beta import main

if __name__ == "__main__":
    raise SystemExit(main())
