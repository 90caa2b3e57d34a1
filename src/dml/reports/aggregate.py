"""Collect the results.json files under a sweep folder into one aligned table.

python scripts/aggregate_results.py <sweep dir> [--sort R@1] [--group-by seed]
                                    [--md table.md] [--csv table.csv]

One row per job (or, with --group-by seed, per setting: mean ± sample std (ddof 1) over
seeds, and n). Columns: the config keys whose values differ between the jobs,
Recall@1/2/4/8 (and MAP@R where present) in percent, and the status. The number shown for
a job is its selection.test block (the epoch its protocol picked); files written before
that block existed give metrics.best instead.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dml.logging.runs import (
    METRICS,
    MISSING,
    RESULTS_FILE,
    Run,
    collect_runs,
    format_value,
    is_ignored,
    mean_std,
    percent_cell,
)


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def varying_keys(runs: Sequence[Run]) -> list[str]:
    """Config keys (paths and run names left out) whose value is not the same in every run."""
    # an unreadable file has no config: it would make every key look varying
    runs = [r for r in runs if r.config] or list(runs)
    order: dict[str, None] = {}
    for run in runs:
        order |= dict.fromkeys(k for k in run.config if not is_ignored(k))
    # a key missing from some runs (a policy's own parameter, say) varies too
    return [
        k for k in order if len({_canon(r.config[k]) if k in r.config else None for r in runs}) > 1
    ]


def _status_summary(runs: Sequence[Run]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{n} {status}" for status, n in counts.items())


@dataclass
class Table:
    """Headers, rows of text cells and which columns are numbers (right-aligned)."""

    headers: list[str]
    rows: list[list[str]]
    numeric: set[int]


def build_table(runs: Sequence[Run], sort: str = "R@1", group_by: str | None = None) -> Table:
    """The table of runs: varying config columns, metrics in percent, status; best first."""
    keys = varying_keys(runs)
    metrics = [m for m in METRICS if any(m in r.metrics for r in runs)]
    if group_by is None:
        groups = [[run] for run in runs]
        headers = ["run", *keys]
    else:
        keys = [k for k in keys if k != group_by]
        grouped: dict[tuple, list[Run]] = {}
        for run in runs:
            grouped.setdefault(tuple(_canon(run.config.get(k)) for k in keys), []).append(run)
        groups = list(grouped.values())
        headers = [*keys, f"{group_by}s", "n"]

    def sort_value(group: list[Run]) -> float:
        values = [r.metrics[sort] for r in group if sort in r.metrics]
        return mean_std(values)[0] if values else -math.inf

    groups.sort(key=sort_value, reverse=True)
    rows = []
    for group in groups:
        first = group[0]
        config = [format_value(first.config[k]) if k in first.config else MISSING for k in keys]
        if group_by is None:
            lead = [first.name, *config]
        else:
            seeds = ",".join(format_value(r.config.get(group_by, MISSING)) for r in group)
            lead = [*config, seeds, str(sum(1 for r in group if r.metrics))]
        cells = [percent_cell([r.metrics[m] for r in group if m in r.metrics]) for m in metrics]
        rows.append([*lead, *cells, _status_summary(group)])
    headers = [*headers, *metrics, "status"]
    numeric = set(range(len(headers) - len(metrics) - 1, len(headers) - 1))
    if group_by is not None:
        numeric.add(headers.index("n"))
    return Table(headers, rows, numeric)


def render_text(table: Table) -> str:
    """Aligned plain text: text columns left, numbers right, a rule under the header."""
    widths = [max(len(h), *(len(r[i]) for r in table.rows)) for i, h in enumerate(table.headers)]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if i in table.numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join(out).rstrip()

    return "\n".join(
        [line(table.headers), "  ".join("-" * w for w in widths), *map(line, table.rows)]
    )


def render_markdown(table: Table) -> str:
    """A GitHub markdown table with numbers right-aligned."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = ["---:" if i in table.numeric else "---" for i in range(len(table.headers))]
    return "\n".join([line(table.headers), "|" + "|".join(rule) + "|", *map(line, table.rows)])


def write_csv(table: Table, path: Path) -> None:
    """The same cells as the printed table, one CSV row each."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(table.headers)
        writer.writerows(table.rows)


def summary(runs: Sequence[Run], root: Path, sort: str) -> list[str]:
    """Lines under the table: counts by status, which number is shown, and why runs failed."""
    lines = [
        f"{len(runs)} runs under {root}: {_status_summary(runs)}. Metrics in percent from "
        f"selection.test (metrics.best where a run has no selection block); sorted by {sort}."
    ]
    lines += [
        f"  {r.name}: {r.status}: {r.error.splitlines()[0]}"
        for r in runs
        if r.status != "completed" and r.error
    ]
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a sweep (or run) folder holding results.json")
    parser.add_argument("--sort", default="R@1", choices=METRICS, help="metric, best first")
    parser.add_argument(
        "--group-by",
        default=None,
        metavar="KEY",
        help="collapse runs differing only in this config key (e.g. seed): mean ± sample std, n",
    )
    parser.add_argument("--md", type=Path, default=None, help="also write a markdown table")
    parser.add_argument("--csv", type=Path, default=None, help="also write a CSV table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print the table of runs under a sweep folder; optionally write it as markdown / CSV."""
    args = parse_args(argv)
    if not args.root.is_dir():
        print(f"aggregate_results: error: {args.root} is not a folder", file=sys.stderr)
        return 2
    runs = collect_runs([args.root])
    if not runs:
        print(f"aggregate_results: error: no {RESULTS_FILE} under {args.root}", file=sys.stderr)
        return 2
    table = build_table(runs, sort=args.sort, group_by=args.group_by)
    print(render_text(table))
    print("\n".join(summary(runs, args.root, args.sort)))
    if args.md:
        args.md.write_text(render_markdown(table) + "\n")
        print(f"wrote {args.md}")
    if args.csv:
        write_csv(table, args.csv)
        print(f"wrote {args.csv}")
    return 0
