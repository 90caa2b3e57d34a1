"""The decisive AutoLR comparison on the default twin: constant, AutoLR, AutoLR keeping its
momentum, a replay of AutoLR's LRs as a plain loop, and constant with momentum cleared at
every epoch; R@1 (mean ± std over seeds), wall time and passes per epoch.

    python scripts/compare_autolr.py [--seeds 3] [--json F] [--md F] [--out DIR] [overrides ...]

The arms and how to read them: dml.studies.compare_autolr.
"""

from dml.studies.compare_autolr import main

if __name__ == "__main__":
    raise SystemExit(main())
