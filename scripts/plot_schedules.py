"""Plot the LR schedules compared in supplement E (its Figure 2), and optionally AutoLR's LRs.

Usage: python scripts/plot_schedules.py [<run_dir>] [--out file.png] [--epochs 50]
           [--l-max 1e-3] [--l-min 1e-4] [--drop-epoch 30] [--gamma 0.1]
           [--cycles 3] [--resets 2]

Step decay, cyclic and SGDR as the real policy code steps them, plus the per-unit LRs of an
AutoLR run with <run_dir>; writes <run_dir>/schedules.png, or ./schedules.png without a run
directory, unless --out is given. How the curves are made: dml.plots.schedules.
"""

from dml.plots.schedules import main

if __name__ == "__main__":
    raise SystemExit(main())
