"""Write a PNG contact sheet of the synthetic dataset: one row per class, images side by side.

Example: python scripts/preview_synthetic.py --domain source --out /tmp/source.png

The sheet is drawn by dml.plots.synthetic.
"""

from dml.plots.synthetic import main

if __name__ == "__main__":
    raise SystemExit(main())
