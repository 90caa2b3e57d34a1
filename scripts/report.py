"""Set finished runs against the AutoLR supplement's Table 2, 3 or 4, as markdown.

    python scripts/report.py <run or sweep dirs...> --table {2,3,4} [--out report.md]

Each cell reads "ours (paper)": ours the mean ± sample std over the runs placed there (their
selection.test, metrics.best in older files). How runs are placed: dml.reports.tables.
"""

from dml.reports.tables import main

if __name__ == "__main__":
    raise SystemExit(main())
