"""Collect results.json files under a folder into one table (console or CSV).

python scripts/aggregate_results.py outputs/multiruns/<sweep> [--csv out.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

KEYS = (
    "lr_policy.name",
    "loss.name",
    "model.arch",
    "pruning.units",
    "pruning.remove_last",
    "autolr.alpha",
    "autolr.beta",
    "trainer.epochs",
    "seed",
)
METRICS = ("R@1", "R@2", "R@4", "R@8", "MAP@R")


def lookup(config: dict, dotted: str):
    """config['a']['b'] for 'a.b', or None."""
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def collect(root: Path) -> list[dict]:
    """One row per results.json below root: run dir, status, key config values, final metrics."""
    rows = []
    for path in sorted(root.rglob("results.json")):
        res = json.loads(path.read_text())
        row = {"run": str(path.parent.relative_to(root)), "status": res.get("status")}
        row |= {k: lookup(res.get("config", {}), k) for k in KEYS}
        final = res.get("metrics", {}).get("final", {})
        row |= {m: final.get(m) for m in METRICS}
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print (or write as CSV) the table of runs found under a folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"aggregate_results: error: {args.root} is not a folder", file=sys.stderr)
        return 2
    rows = collect(args.root)
    if not rows:
        print(f"aggregate_results: error: no results.json under {args.root}", file=sys.stderr)
        return 2
    if args.csv:
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {len(rows)} rows to {args.csv}")
        return 0
    for row in rows:
        shown = {k: v for k, v in row.items() if v is not None and k not in METRICS}
        metrics = "  ".join(f"{m} {100 * row[m]:.2f}" for m in METRICS if row[m] is not None)
        print(f"{shown}  {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
