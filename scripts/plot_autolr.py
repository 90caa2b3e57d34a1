"""Plot the AutoLR diagnostics of one run (results.json, section "autolr").

Usage: python scripts/plot_autolr.py <run_dir>

Writes autolr_variation.png, autolr_lr.png, autolr_trials.png and autolr_heatmap.png into
<run_dir>/plots/; what each figure shows: dml.plots.autolr.
"""

from dml.plots.autolr import main

if __name__ == "__main__":
    raise SystemExit(main())
