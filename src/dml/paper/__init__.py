"""The AutoLR supplement's published numbers (Tables 1-4) and lookups by hyperparameters.

The numbers live in published.json beside this module, transcribed by hand from the
supplement; each row carries the hyperparameters that reproduce it, so a run can be set
against the paper's cell for the same setting. Recall@K and top-1 are in percent as the
paper prints them; learning rates are absolute.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

#: Table 4's two (l_max, l_min) column groups, in the paper's order.
TABLE4_COLUMNS: tuple[tuple[float, float], ...] = ((1e-3, 1e-4), (1e-2, 1e-3))
#: The Recall@K columns of Tables 2 and 4.
RECALL_KEYS: tuple[str, ...] = ("R@1", "R@2", "R@4", "R@8")
TABLES: tuple[str, ...] = ("table1", "table2", "table3", "table4")


@lru_cache(maxsize=1)
def _load() -> dict:
    text = resources.files(__name__).joinpath("published.json").read_text(encoding="utf-8")
    return json.loads(text)


def load_published() -> dict:
    """The whole data file: {'source', 'units', 'table1'..'table4': {caption, ..., rows}}."""
    # a copy, so a caller that edits rows cannot change what the next caller reads
    return copy.deepcopy(_load())


def context(paper: str, dataset: str) -> dict:
    """Another paper's published metrics on a dataset (context, not a target): {'R@1': ...}."""
    entry = _load()["context"].get(paper)
    if not isinstance(entry, dict) or dataset not in entry["datasets"]:
        known = {p: sorted(e["datasets"]) for p, e in _load()["context"].items() if p != "note"}
        raise KeyError(f"no context for {paper!r} on {dataset!r}; recorded: {known}")
    return {"arch": entry["arch"], **entry["datasets"][dataset]}


def rows(table: str) -> list[dict]:
    """All rows of one table ('table1'..'table4'), copied."""
    if table not in TABLES:
        raise KeyError(f"no table {table!r} in the supplement data; expected one of {TABLES}")
    return copy.deepcopy(_load()[table]["rows"])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        # configs hold 1.0e-3 as parsed floats; the file may hold 0.001: compare by value
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return sorted(a) == sorted(b)
    return a == b


def find_rows(table: str, **keys: Any) -> list[dict]:
    """Rows of `table` whose every given key equals the given value (floats by value)."""
    return [r for r in rows(table) if all(k in r and _same(r[k], v) for k, v in keys.items())]


def _one(found: list[dict], what: str) -> dict | None:
    if len(found) > 1:
        raise ValueError(f"{what} matches {len(found)} rows of the supplement data, expected one")
    return found[0] if found else None


def table1_row(layer: int) -> dict | None:
    """Table 1's column for a layer (1..14): eta, eta_tilde, grad_norm(_tilde), gamma."""
    return _one(find_rows("table1", layer=layer), f"table1 layer {layer}")


def table2_row(dataset: str, optimizer: str, pruning: Sequence[int], policy: str) -> dict | None:
    """Table 2's row for (cub200|cars196, adamw|sgd, [] | [15, 16], official|autolr), or None."""
    keys = {"dataset": dataset, "optimizer": optimizer, "pruning": list(pruning), "policy": policy}
    return _one(find_rows("table2", **keys), f"table2 {keys}")


def table3_value(dataset: str, pruning: Sequence[int], autolr: bool) -> float | None:
    """Table 3's top-1 (percent) for an FGVC dataset, pruned units and the AutoLR flag."""
    row = _one(
        find_rows("table3", dataset=dataset, pruning=list(pruning), autolr=autolr),
        f"table3 {dataset}/{list(pruning)}/{autolr}",
    )
    return None if row is None else row["top1"]


def table4_row(
    policy: str, l_max: float | None = None, l_min: float | None = None, **params: Any
) -> dict | None:
    """Table 4's row for a policy, its parameters and a column, or None if the paper has none.

    params: step t_d, gamma; cyclic cycles; sgdr n_reset; autolr alpha, beta. Step has no
    l_min, so its column is picked by l_max alone; AutoLR's one result spans both columns,
    so l_max and l_min are ignored for it.
    """
    keys = dict(params, policy=policy)
    if policy != "autolr":
        if l_max is None:
            raise ValueError(f"table4 {policy}: l_max picks the column and is required")
        keys["l_max"] = l_max
    if policy not in ("autolr", "step"):
        if l_min is None:
            raise ValueError(f"table4 {policy}: l_min picks the column and is required")
        keys["l_min"] = l_min
    return _one(find_rows("table4", **keys), f"table4 {keys}")


def printed(row: dict, key: str) -> str:
    """A row's value as the paper prints it (two decimals unless the row says otherwise)."""
    return f"{row[key]:.{row.get('decimals', 2)}f}"
