"""Collect the results.json files under a sweep folder into one aligned table.

python scripts/aggregate_results.py <sweep dir> [--sort R@1] [--group-by seed]
                                    [--md table.md] [--csv table.csv]

One row per job (or, with --group-by seed, per setting: mean ± sample std over seeds, and
n); the columns and the number shown for a job: dml.reports.aggregate.
"""

from dml.reports.aggregate import main

if __name__ == "__main__":
    raise SystemExit(main())
