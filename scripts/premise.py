"""Does AutoLR's premise hold on your data and backbone? A few short single-LR runs answer it
before a day of GPU goes into AutoLR:

    python scripts/premise.py [train.py overrides ...] --json premise.json [--epochs 3]
        [--seeds 1] [--parallel 1] [--out DIR]

It measures the single-LR weight variations (v0, their spread over the units and AutoLR's first
update for unit 1 and the top unit), the transfer ratio, and the R@1 lost with the lower half
of the units, the stem with them, or the upper half frozen; then prints a one-line verdict
with its reason. The metrics and their bounds: dml.studies.premise.
"""

from dml.studies.premise import main

if __name__ == "__main__":
    raise SystemExit(main())
