"""Set finished runs against the AutoLR supplement's Table 2, 3 or 4, as markdown.

python scripts/report.py <run or sweep dirs...> --table {2,3,4} [--out report.md]

Each run lands in the paper's row and column for the hyperparameters it used; each cell
reads "ours (paper)", ours being the mean ± sample std (ddof 1) over the runs in that cell
(n when more than one). Only results.json files are read; the number used is
selection.test (so the test or val protocol is each run's own), or metrics.best for files
without that block.

Table 4 rows: step by (t_d, gamma), cyclic by cycles, SGDR by n_reset (lr_policy.resets),
AutoLR by (alpha, beta); columns by (l_max, l_min), step and AutoLR by l_max alone. A
shorter run's drop epoch is put on the paper's 50-epoch scale: round(drop_epoch * 50 /
epochs). Table 2 rows: AdamW -> official; SGD -> modified, + pruning of the last two
units, + AutoLR; columns by dataset (a synthetic run is set against CUB-200). Table 3 (top-1
of task=classification runs): rows by the number of trailing units pruned (0 -> none,
1 -> 16, 2 -> 15,16; a pruned ResNet-18 twin by the same count) and lr_policy autolr or not;
columns cub200, cars196, aircraft (a synthetic run is set against FGVC-CUB). Runs that fit
no row are listed under the tables with the reason; failed runs are counted in a note.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dml.logging.runs import (
    RESULTS_FILE,
    Run,
    collect_runs,
    format_value,
    is_ignored,
    percent_cell,
)
from dml.paper import (
    RECALL_KEYS,
    TABLE4_COLUMNS,
    load_published,
    printed,
    rows,
    table2_row,
    table3_value,
    table4_row,
)

NONE = "—"
PAPER_EPOCHS = load_published()["table4"]["epochs"]
TABLE4_PARAMS = {
    "step": ("t_d", "gamma"),
    "cyclic": ("cycles",),
    "sgdr": ("n_reset",),
    "autolr": ("alpha", "beta"),
}
TABLE4_METHODS = {"step": "Step-decay", "cyclic": "Cyclic", "sgdr": "SGDR", "autolr": "AutoLR"}
TABLE2_DATASETS = ("cub200", "cars196")
TABLE3_DATASETS = {"cub200": "fgvc_cub", "cars196": "fgvc_cars", "aircraft": "fgvc_aircraft"}
TABLE3_PRUNING = ([], [16], [15, 16])
DATASET_NAMES = {"cub200": "CUB-200", "cars196": "Cars-196", "synthetic": "synthetic"}


def sci(x: float) -> str:
    """1e-3 for 0.001 (the paper's notation), 5e-4 for 0.0005."""
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}" if float(mantissa) * 10 ** int(exponent) == x else f"{x:g}"


def paper_drop_epoch(drop_epoch: int, epochs: int, paper_epochs: int = PAPER_EPOCHS) -> int:
    """A drop epoch on the paper's 50-epoch scale: round(drop_epoch * 50 / epochs)."""
    return round(drop_epoch * paper_epochs / epochs)


def removed_units(cfg: dict[str, Any]) -> int:
    """How many trailing units the run pruned (pruning.units or pruning.remove_last)."""
    # the trainer refuses a non-trailing set, so the count identifies the pruning
    return int(cfg.get("pruning.remove_last") or 0) or len(set(cfg.get("pruning.units") or []))


def pruning_label(cfg: dict[str, Any]) -> str:
    """'none', 'units [15,16]' or 'last 2'."""
    if cfg.get("pruning.units"):
        return f"units {format_value(sorted(cfg['pruning.units']))}"
    last = int(cfg.get("pruning.remove_last") or 0)
    return f"last {last}" if last else "none"


def _close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-6)


# --- where a run lands ---------------------------------------------------------------------


@dataclass
class Layout:
    """One paper table: row labels, column groups, the paper's value of each cell."""

    row_keys: list[tuple]
    method: Callable[[tuple], str]
    hyper: Callable[[tuple], str] | None
    columns: Callable[[tuple], list[str]]  # column group names, given the table's context
    paper: dict[tuple[int, int], dict]
    place: Callable[[Run], tuple[int, int] | str]
    context: Callable[[Run], tuple]
    caption: Callable[[tuple, list[Run]], str]
    metrics: tuple[str, ...] = RECALL_KEYS  # the value columns of each column group


def table4_key(cfg: dict[str, Any]) -> tuple[str, dict, float | None, float | None] | str:
    """(policy, Table 4 parameters, l_max, l_min) of a run's config, or why it has none."""
    policy = cfg.get("lr_policy.name")
    l_max = cfg.get("lr_policy.l_max", cfg.get("optimizer.lr"))
    l_min = cfg.get("lr_policy.l_min")
    if policy not in TABLE4_CELLS:
        return f"lr_policy {policy} (Table 4: {', '.join(TABLE4_CELLS)})"
    return TABLE4_CELLS[policy](cfg, l_max, l_min)


def _step_cell(cfg: dict[str, Any], l_max, l_min) -> tuple | str:
    epochs = int(cfg.get("trainer.epochs") or 0)
    drop, every = cfg.get("lr_policy.drop_epoch"), int(cfg.get("lr_policy.every") or 0)
    if every:
        # a periodic step that drops exactly once within the run is the paper's step
        if not every < epochs <= 2 * every:
            return f"periodic step every {every} of {epochs} epochs (Table 4: one drop)"
        drop = every
    if drop is None or epochs <= 0:
        return "step run without lr_policy.drop_epoch or trainer.epochs"
    params = {"t_d": paper_drop_epoch(int(drop), epochs), "gamma": cfg.get("lr_policy.gamma")}
    return "step", params, l_max, None


# lr_policy.name -> (policy, its Table 4 parameters, l_max, l_min) of a run's config
TABLE4_CELLS: dict[str, Callable[..., tuple | str]] = {
    "step": _step_cell,
    "cyclic": lambda cfg, hi, lo: ("cyclic", {"cycles": cfg.get("lr_policy.cycles")}, hi, lo),
    "sgdr": lambda cfg, hi, lo: ("sgdr", {"n_reset": cfg.get("lr_policy.resets")}, hi, lo),
    "autolr": lambda cfg, hi, lo: (
        "autolr",
        {"alpha": cfg.get("autolr.alpha"), "beta": cfg.get("autolr.beta")},
        hi,
        None,
    ),
}
# policy -> its Table 4 hyper-parameter column
HYPER4 = {
    "step": lambda p: f"t_d: {p['t_d']}, γ: {p['gamma']:g}",
    "cyclic": lambda p: f"cycle: {p['cycles']}",
    "sgdr": lambda p: f"n_reset: {p['n_reset']}",
    "autolr": lambda p: f"α: {p['alpha']:g}, β: {p['beta']:g}",
}


def _hyper4(key: tuple) -> str:
    return HYPER4[key[0]](dict(key[1]))


def table4_layout() -> Layout:
    """Table 4: 19 policy rows x 2 (l_max, l_min) column groups."""
    row_keys: list[tuple] = []
    paper: dict[tuple[int, int], dict] = {}
    for r in rows("table4"):
        key = (r["policy"], tuple((k, r[k]) for k in TABLE4_PARAMS[r["policy"]]))
        if key not in row_keys:
            row_keys.append(key)
        i = row_keys.index(key)
        if r["l_max"] is None:
            # AutoLR's one result spans both columns in the paper
            paper |= {(i, j): r for j in range(len(TABLE4_COLUMNS))}
        else:
            paper[(i, _column4(r["policy"], r["l_max"], r["l_min"]))] = r

    def place(run: Run) -> tuple[int, int] | str:
        key = table4_key(run.config)
        if isinstance(key, str):
            return key
        policy, params, l_max, l_min = key
        j = _column4(policy, l_max, l_min)
        if j is None:
            bounds = f"l_max {l_max}" if policy in ("step", "autolr") else f"({l_max}, {l_min})"
            return f"{bounds} is not a Table 4 column"
        found = table4_row(policy, l_max=TABLE4_COLUMNS[j][0], l_min=TABLE4_COLUMNS[j][1], **params)
        if found is None:
            shown = ", ".join(f"{k} {v}" for k, v in params.items())
            return f"Table 4 has no {policy} row with {shown}"
        return row_keys.index((policy, tuple((k, found[k]) for k in params))), j

    def context(run: Run) -> tuple:
        c = run.config
        return (
            c.get("dataset.name"),
            c.get("model.arch"),
            c.get("loss.name"),
            c.get("optimizer.name"),
            pruning_label(c),
            c.get("trainer.epochs"),
        )

    def caption(ctx: tuple, runs: list[Run]) -> str:
        dataset, arch, loss, optimizer, pruning, epochs = ctx
        name = DATASET_NAMES.get(dataset, str(dataset))
        if dataset != "cub200":
            name += " (set against the paper's CUB-200 values)"
        scale = ""
        if epochs != PAPER_EPOCHS:
            scale = (
                f"; step t_d put on the paper's {PAPER_EPOCHS}-epoch scale as "
                f"round(drop_epoch × {PAPER_EPOCHS} / {epochs})"
            )
        return (
            f"**Table 4, ours (paper).** Recall@K in percent. Ours: dataset {name}, {arch}, "
            f"pruning {pruning}, loss {loss}, optimizer {optimizer}, {epochs} epochs{scale}; "
            f"{_runs_and_seeds(runs)}; protocol {_protocols(runs)}. Paper: CUB-200, ResNet-50 "
            f"pruned 15,16, {PAPER_EPOCHS} epochs, 224×224. Columns are "
            "[l_max, l_min]; step has no l_min, its column is picked by l_max; the paper's one "
            "AutoLR result spans both columns and is repeated in each."
        )

    columns = [f"[{sci(a)}, {sci(b)}]" for a, b in TABLE4_COLUMNS]
    return Layout(
        row_keys,
        lambda key: TABLE4_METHODS[key[0]],
        _hyper4,
        lambda ctx: columns,
        paper,
        place,
        context,
        caption,
    )


def _column4(policy: str, l_max: float | None, l_min: float | None) -> int | None:
    for j, (col_max, col_min) in enumerate(TABLE4_COLUMNS):
        if _close(l_max, col_max) and (policy in ("step", "autolr") or _close(l_min, col_min)):
            return j
    return None


def twin_context(run: Run) -> tuple:
    """(synthetic or not, arch, epochs): Tables 2 and 3 set a twin run in its own table."""
    c = run.config
    return (c.get("dataset.name") == "synthetic", c.get("model.arch"), c.get("trainer.epochs"))


def table2_layout() -> Layout:
    """Table 2: 4 recipe rows x 2 datasets."""
    row_keys: list[tuple] = []
    paper: dict[tuple[int, int], dict] = {}
    for r in rows("table2"):
        key = (r["method"], r["optimizer"], tuple(r["pruning"]), r["policy"])
        if key not in row_keys:
            row_keys.append(key)
        paper[(row_keys.index(key), TABLE2_DATASETS.index(r["dataset"]))] = r

    def place(run: Run) -> tuple[int, int] | str:
        c = run.config
        loss, dataset = c.get("loss.name"), c.get("dataset.name")
        if loss != "proxy_anchor":
            return f"loss {loss} (Table 2 is Proxy-Anchor)"
        column = "cub200" if dataset == "synthetic" else dataset
        if column not in TABLE2_DATASETS:
            return f"dataset {dataset} (Table 2: cub200, cars196, or synthetic against cub200)"
        optimizer, removed = c.get("optimizer.name"), removed_units(c)
        policy = "autolr" if c.get("lr_policy.name") == "autolr" else "official"
        if removed not in (0, 2):
            return f"pruning {pruning_label(c)} (Table 2: none or the last two units)"
        found = table2_row(column, optimizer, [15, 16] if removed else [], policy)
        if found is None:
            what = f"{optimizer}, pruning {pruning_label(c)}, lr_policy {c.get('lr_policy.name')}"
            return f"Table 2 has no row for {what}"
        key = (found["method"], optimizer, tuple(found["pruning"]), policy)
        return row_keys.index(key), TABLE2_DATASETS.index(column)

    def caption(ctx: tuple, runs: list[Run]) -> str:
        synthetic, arch, epochs = ctx
        data = (
            "dataset synthetic, set against the paper's CUB-200 values"
            if synthetic
            else "datasets " + ", ".join(sorted({str(r.config.get("dataset.name")) for r in runs}))
        )
        return (
            f"**Table 2, ours (paper).** Recall@K in percent, Proxy-Anchor loss. Ours: {data}; "
            f"{arch}, {epochs} epochs; {_runs_and_seeds(runs)}; protocol {_protocols(runs)}. "
            "Paper: ResNet-50, 224×224. Rows: AdamW → official; SGD → modified; pruning of "
            "the last two units → Pruning 15,16; lr_policy autolr → AutoLR."
        )

    def columns(ctx: tuple) -> list[str]:
        synthetic = bool(ctx) and ctx[0]
        return ["synthetic → CUB-200" if synthetic else "CUB-200", "Cars-196"]

    return Layout(row_keys, lambda key: key[0], None, columns, paper, place, twin_context, caption)


def table3_layout() -> Layout:
    """Table 3: 6 rows (pruning x AutoLR) x 3 FGVC datasets, top-1 accuracy."""
    row_keys = [(tuple(p), a) for a in (False, True) for p in TABLE3_PRUNING]
    datasets = list(TABLE3_DATASETS)
    paper: dict[tuple[int, int], dict] = {}
    for i, (pruning, autolr) in enumerate(row_keys):
        for j, name in enumerate(datasets):
            value = table3_value(TABLE3_DATASETS[name], list(pruning), autolr)
            if value is not None:
                paper[(i, j)] = {"top1": value}

    def place(run: Run) -> tuple[int, int] | str:
        c = run.config
        if c.get("task") != "classification":
            return f"task {c.get('task', 'retrieval')} (Table 3 is task=classification)"
        dataset = c.get("dataset.name")
        column = "cub200" if dataset == "synthetic" else dataset
        if column not in TABLE3_DATASETS:
            return f"dataset {dataset} (Table 3: cub200, cars196, aircraft, or synthetic)"
        removed = removed_units(c)
        if removed > 2:
            return f"pruning {pruning_label(c)} (Table 3: none, 16 or 15,16)"
        key = (tuple(TABLE3_PRUNING[removed]), c.get("lr_policy.name") == "autolr")
        return row_keys.index(key), datasets.index(column)

    def caption(ctx: tuple, runs: list[Run]) -> str:
        synthetic, arch, epochs = ctx
        data = (
            "dataset synthetic (split by image), set against FGVC-CUB"
            if synthetic
            else (
                "datasets " + ", ".join(sorted({str(r.config.get("dataset.name")) for r in runs}))
            )
        )
        policies = ", ".join(sorted({str(r.config.get("lr_policy.name")) for r in runs}))
        return (
            f"**Table 3, ours (paper).** Top-1 accuracy in percent, softmax classifier over "
            f"all classes. Ours: {data}; {arch}, {epochs} epochs; LR policies {policies}; "
            f"{_runs_and_seeds(runs)}; protocol {_protocols(runs)}. Paper: ResNet-50, 40 "
            "epochs, 224×224. Rows by the trailing units pruned (0, 1, 2 → none, 16, 15,16) "
            "and whether lr_policy is autolr."
        )

    def columns(ctx: tuple) -> list[str]:
        synthetic = bool(ctx) and ctx[0]
        first = "synthetic → FGVC-CUB" if synthetic else "FGVC-CUB"
        return [first, "FGVC-Cars", "FGVC-Aircraft"]

    def method(key: tuple) -> str:
        pruning, autolr = key
        name = "Pruning " + ",".join(map(str, pruning)) if pruning else "None pruned"
        return name + (" + AutoLR" if autolr else "")

    return Layout(
        row_keys, method, None, columns, paper, place, twin_context, caption, metrics=("top1",)
    )


def metric_label(metric: str) -> str:
    """'R@1' -> 'R@1', 'top1' -> 'top-1'."""
    return "top-1" if metric == "top1" else metric


def _runs_and_seeds(runs: list[Run]) -> str:
    seeds = sorted({format_value(r.config.get("seed")) for r in runs})
    return f"{len(runs)} run{'s' * (len(runs) != 1)}, seeds {', '.join(seeds) or NONE}"


def _protocols(runs: list[Run]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.protocol] = counts.get(run.protocol, 0) + 1
    if not counts:
        return NONE
    return ", ".join(f"{p} ({n} run{'s' * (n != 1)})" for p, n in sorted(counts.items()))


# --- rendering -------------------------------------------------------------------------------


def ours_text(runs: Sequence[Run], metric: str) -> str:
    """Mean ± sample std in percent over the runs that have the metric, n if several."""
    values = [r.metrics[metric] for r in runs if metric in r.metrics]
    if not values:
        return NONE
    text = percent_cell(values)
    return f"{text} [n={len(values)}]" if len(values) > 1 else text


def cell_text(runs: Sequence[Run], paper_row: dict | None, metric: str) -> str:
    """'ours (paper)', e.g. '68.10 ± 0.57 [n=2] (68.75)' or '— (67.00)'."""
    paper = printed(paper_row, metric) if paper_row and metric in paper_row else NONE
    return f"{ours_text(runs, metric)} ({paper})"


def mixed_settings(runs: Sequence[Run]) -> list[str]:
    """Config keys (besides seed and paths) on which the runs averaged in one cell differ."""
    autolr = any(r.config.get("lr_policy.name") == "autolr" for r in runs)
    keys = sorted({k for r in runs for k in r.config})
    differ = []
    for key in keys:
        if key == "seed" or is_ignored(key) or (key.startswith("autolr.") and not autolr):
            continue
        values = {format_value(r.config.get(key, NONE)) for r in runs}
        if len(values) > 1:
            differ.append(f"{key} ({', '.join(sorted(values))})")
    seeds = [format_value(r.config.get("seed")) for r in runs]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        differ.append(f"seed {', '.join(repeated)} more than once")
    return differ


def render_table(
    layout: Layout, number: int, ctx: tuple, cells: dict[tuple[int, int], list[Run]]
) -> str:
    """One markdown table laid out like the supplement's, with its caption and notes."""
    names = layout.columns(ctx)
    head = ["Method"] + (["hyper-parameters"] if layout.hyper else [])
    head += [f"{name} {metric_label(m)}" for name in names for m in layout.metrics]
    values = len(names) * len(layout.metrics)
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * (len(head) - values) + ["---:"] * values) + "|",
    ]
    notes = []
    previous_method = None
    for i, key in enumerate(layout.row_keys):
        method = layout.method(key)
        row = [method if method != previous_method else ""]
        previous_method = method
        if layout.hyper:
            row.append(layout.hyper(key))
        for j in range(len(names)):
            runs = cells.get((i, j), [])
            row += [cell_text(runs, layout.paper.get((i, j)), m) for m in layout.metrics]
            differ = mixed_settings(runs)
            if differ:
                where = " ".join(filter(None, [method, layout.hyper(key) if layout.hyper else ""]))
                notes.append(f"- {where} at {names[j]}: the runs differ in " + "; ".join(differ))
        lines.append("| " + " | ".join(row) + " |")
    placed = [r for runs in cells.values() for r in runs]
    caption = layout.caption(ctx, placed) if placed else f"**Table {number}, paper only.**"
    out = [caption, "", *lines]
    if notes:
        out += ["", "Cells that average runs of different settings:", *notes]
    return "\n".join(out)


def describe(run: Run) -> str:
    """The hyperparameters that decide a run's place, as key=value pairs."""
    c = run.config
    keys = [
        "dataset.name",
        "model.arch",
        "loss.name",
        "optimizer.name",
        "optimizer.lr",
        "pruning.units",
        "pruning.remove_last",
    ]
    keys += ["lr_policy.name"]
    keys += sorted(k for k in c if k.startswith("lr_policy.") and k not in keys)
    if c.get("lr_policy.name") == "autolr":
        keys += ["autolr.alpha", "autolr.beta"]
    keys += ["trainer.epochs", "seed"]
    return ", ".join(f"{k}={format_value(c[k])}" for k in keys if k in c)


def build_report(runs: Sequence[Run], table: int) -> tuple[str, dict[str, int]]:
    """The markdown report and counts of runs placed, not in the paper and not counted."""
    layout = {2: table2_layout, 3: table3_layout, 4: table4_layout}[table]()
    contexts: dict[tuple, dict[tuple[int, int], list[Run]]] = {}
    outside: list[tuple[Run, str]] = []
    uncounted: list[Run] = []
    for run in runs:
        if run.status != "completed" or not run.metrics:
            uncounted.append(run)
            continue
        where = layout.place(run)
        if isinstance(where, str):
            outside.append((run, where))
            continue
        contexts.setdefault(layout.context(run), {}).setdefault(where, []).append(run)
    parts = [f"# Ours vs. the AutoLR supplement, Table {table}", ""]
    if not contexts:
        parts += ["No completed run fits a row of this table; the paper's values alone:", ""]
        contexts[()] = {}
    for ctx, cells in contexts.items():
        parts += [render_table(layout, table, ctx, cells), ""]
    parts += [
        "Each cell: ours (paper). Ours is selection.test, the test metrics at the epoch the "
        "run's protocol picked (metrics.best for files written before that block), as mean "
        "± sample std (ddof 1) over the runs in the cell, [n=…] when more than one; "
        f"{NONE}: none.",
        "",
    ]
    if outside:
        parts.append(f"Not in the paper ({len(outside)} run{'s' * (len(outside) != 1)}):")
        parts += [f"- `{r.name}`: {why}; {describe(r)}" for r, why in outside]
        parts.append("")
    if uncounted:
        counts: dict[str, list[str]] = {}
        for r in uncounted:
            status = r.status if r.status != "completed" else "completed without metrics"
            why = f": {r.error.splitlines()[0]}" if r.error.strip() else ""
            counts.setdefault(status, []).append(f"`{r.name}`{why}")
        summary = "; ".join(
            f"{len(names)} {status} ({', '.join(names)})" for status, names in counts.items()
        )
        parts += [f"Not counted: {summary}.", ""]
    placed = sum(len(v) for cells in contexts.values() for v in cells.values())
    stats = {"placed": placed, "outside": len(outside), "uncounted": len(uncounted)}
    return "\n".join(parts).rstrip() + "\n", stats


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="run or sweep folders")
    parser.add_argument("--table", type=int, choices=(2, 3, 4), required=True)
    parser.add_argument("--out", type=Path, default=None, help="markdown file (default: stdout)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the markdown comparison of the runs under the given folders with a paper table."""
    args = parse_args(argv)
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"report: error: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    runs = collect_runs(args.dirs)
    if not runs:
        where = ", ".join(map(str, args.dirs))
        print(f"report: error: no {RESULTS_FILE} under {where}", file=sys.stderr)
        return 2
    text, stats = build_report(runs, args.table)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    args.out.write_text(text)
    print(
        f"wrote {args.out}: {stats['placed']} runs placed, {stats['outside']} not in the paper, "
        f"{stats['uncounted']} not counted"
    )
    return 0
