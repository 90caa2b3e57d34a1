"""dml.paper: the supplement's numbers, checked cell by cell against the paper."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dml.paper import (
    load_published,
    printed,
    rows,
    table1_row,
    table2_row,
    table3_value,
    table4_row,
)

ROOT = Path(__file__).resolve().parents[2]
SUPPLEMENT = ROOT.parent / "shared" / "paper" / "autolr-supplement.md"
needs_supplement = pytest.mark.skipif(
    not SUPPLEMENT.is_file(),
    reason=f"{SUPPLEMENT} is absent (a plain clone lacks the shared paper folder)",
)


def _recalls(row: dict) -> list[float]:
    return [row["R@1"], row["R@2"], row["R@4"], row["R@8"]]


# --- cells typed by hand from the supplement -------------------------------------------


def test_table4_step_best_cell():
    """Bug: a mistyped or column-swapped step row (t_d 40, gamma 0.5 at l_max 1e-3)."""
    row = table4_row("step", l_max=1e-3, l_min=1e-4, t_d=40, gamma=0.5)
    assert _recalls(row) == [68.75, 79.74, 87.96, 92.76]


def test_table4_step_column_is_picked_by_l_max_alone():
    """Bug: step matched on l_min too, so a step run (which has no l_min) finds no cell."""
    row = table4_row("step", l_max=1e-2, t_d=30, gamma=0.1)
    assert _recalls(row) == [66.95, 78.04, 86.41, 91.63]


def test_table4_cyclic_seven_cycles_in_the_second_column():
    """Bug: cyclic cells keyed to the wrong (l_max, l_min) column (67.33 is the first)."""
    assert table4_row("cyclic", l_max=1e-2, l_min=1e-3, cycles=7)["R@1"] == 68.55
    assert table4_row("cyclic", l_max=1e-3, l_min=1e-4, cycles=7)["R@1"] == 67.33


def test_table4_cyclic_needs_both_bounds_to_match():
    """Bug: cyclic matched on l_max alone, pairing a (1e-2, 1e-4) run with a (1e-2, 1e-3) cell."""
    assert table4_row("cyclic", l_max=1e-2, l_min=1e-4, cycles=7) is None


def test_table4_sgdr_keyed_by_n_reset():
    """Bug: SGDR rows keyed by cycle count instead of resets (n_reset 8 at 1e-2 is 68.18)."""
    assert _recalls(table4_row("sgdr", l_max=1e-2, l_min=1e-3, n_reset=8)) == [
        68.18,
        79.34,
        86.92,
        92.27,
    ]


def test_table4_autolr_spans_both_columns():
    """Bug: AutoLR's one result tied to one column, so a run at l_max 1e-2 finds nothing."""
    expected = [70.10, 80.62, 88.08, 92.98]
    assert _recalls(table4_row("autolr", alpha=2, beta=0.4)) == expected
    assert _recalls(table4_row("autolr", l_max=1e-2, l_min=1e-3, alpha=2.0, beta=0.4)) == expected
    assert table4_row("autolr", alpha=3, beta=0.6) is None


def test_table2_cells():
    """Bug: Table 2 rows or dataset columns swapped (Cars AutoLR 88.55, CUB modified 61.41)."""
    assert table2_row("cars196", "sgd", [15, 16], "autolr")["R@1"] == 88.55
    # the unit order of a pruning list carries no meaning
    assert table2_row("cars196", "sgd", [16, 15], "autolr")["R@8"] == 97.49
    assert table2_row("cub200", "sgd", [], "official")["R@1"] == 61.41
    assert table2_row("cub200", "adamw", [15, 16], "official") is None


def test_printed_keeps_the_papers_digits():
    """Bug: the official row printed as 69.70 (the paper gives one decimal) or 67.00 as 67.0."""
    assert printed(table2_row("cub200", "adamw", [], "official"), "R@1") == "69.7"
    assert printed(table4_row("step", l_max=1e-3, t_d=30, gamma=0.1), "R@1") == "67.00"


def test_table3_cells():
    """Bug: Table 3 autolr flag or pruning column mixed up (Aircraft none+AutoLR is 82.18)."""
    assert table3_value("fgvc_aircraft", [], True) == 82.18
    assert table3_value("fgvc_aircraft", [], False) == 77.83
    assert table3_value("fgvc_cub", [16], True) == 80.34
    assert table3_value("fgvc_cars", [15, 16], True) == 88.30


def test_table1_cells():
    """Bug: Table 1 rows misaligned by a layer (layer 13: gamma 0.69, eta_tilde 1.73e-3)."""
    row = table1_row(13)
    assert row["gamma"] == 0.69
    assert row["eta_tilde"] == pytest.approx(1.73e-3)
    assert row["grad_norm"] == 285.15
    assert table1_row(15) is None


def test_table1_gamma_is_the_printed_ratio_of_the_grad_norms():
    """Bug: a mistyped gradient norm (the paper's gamma is their ratio to two decimals)."""
    table = rows("table1")
    assert [r["layer"] for r in table] == list(range(1, 15))
    for r in table:
        # 0.0051: the paper rounds half up (layer 2: 51.25 / 56.63 = 0.9050 printed 0.91)
        assert abs(r["grad_norm_tilde"] / r["grad_norm"] - r["gamma"]) <= 0.0051, r


def test_load_published_returns_a_copy():
    """Bug: the cached data handed out by reference, so one caller's edit leaks to the next."""
    first = load_published()
    first["table4"]["rows"][0]["R@1"] = -1.0
    assert load_published()["table4"]["rows"][0]["R@1"] == 67.00


def test_json_ships_as_package_data():
    """Bug: published.json left out of the wheel (it is not a .py file)."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "published.json" in project["tool"]["setuptools"]["package-data"]["dml.paper"]


# --- every cell of Tables 1-4 against the markdown ----------------------------------------

NUMBER = re.compile(r"^\d+(\.\d+)?$")


def _table_lines(text: str, number: int) -> list[str]:
    """The lines of 'Table N:' in the markdown, from its caption to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"Table {number}:"))
    body = []
    for line in lines[start + 1 :]:
        if not line.strip():
            if body:
                break
            continue
        body.append(line)
    return body


def _cells(line: str) -> list[str]:
    return [re.sub(r"</?(b|u|i)>", "", c).strip() for c in line.split("\t")]


def _numbers(cells: list[str]) -> list[float]:
    return [float(c) for c in cells if NUMBER.match(c)]


@pytest.fixture(scope="module")
def supplement() -> str:
    return SUPPLEMENT.read_text(encoding="utf-8")


@needs_supplement
def test_every_table4_cell_matches_the_markdown(supplement):
    """Bug: any Table 4 cell mistyped, missing, or an extra row not in the paper."""
    parsed = []
    method = None
    pending = None  # AutoLR prints its values on the line after its hyper-parameters
    for line in _table_lines(supplement, 4)[2:]:
        cells = _cells(line)
        if cells[0]:
            method = cells[0]
        values = _numbers(cells)
        hyper = cells[1] if len(cells) > 1 else ""
        if not hyper and pending is not None:
            parsed.append((pending, None, values))
            pending = None
            continue
        if method == "Step-decay":
            t_d, gamma = re.search(r"t_d : (\d+), \\gamma : ([\d.]+)", hyper).groups()
            key = {"policy": "step", "t_d": int(t_d), "gamma": float(gamma)}
        elif method == "Cyclic":
            key = {"policy": "cyclic", "cycles": int(re.search(r": (\d+)", hyper).group(1))}
        elif method == "SGDR":
            key = {"policy": "sgdr", "n_reset": int(re.search(r": (\d+)", hyper).group(1))}
        else:
            alpha, beta = re.search(r"\\alpha : ([\d.]+), \\beta : ([\d.]+)", hyper).groups()
            pending = {"policy": "autolr", "alpha": float(alpha), "beta": float(beta)}
            continue
        assert len(values) == 8, line
        parsed.append((key, (1e-3, 1e-4), values[:4]))
        parsed.append((key, (1e-2, 1e-3), values[4:]))
    assert len(parsed) == 37
    assert len(rows("table4")) == 37
    for key, column, values in parsed:
        l_max, l_min = column or (None, None)
        params = {k: v for k, v in key.items() if k != "policy"}
        row = table4_row(key["policy"], l_max=l_max, l_min=l_min, **params)
        assert row is not None, (key, column)
        assert _recalls(row) == values, (key, column)


@needs_supplement
def test_every_table2_cell_matches_the_markdown(supplement):
    """Bug: any Table 2 cell mistyped, or a row keyed to the wrong optimizer/pruning/policy."""
    keys = {
        "Proxy-Anchor + AdamW (Official version)": ("adamw", [], "official"),
        "Proxy-Anchor + SGD (Modified version)": ("sgd", [], "official"),
        "Proxy-Anchor + SGD + Pruning 15,16": ("sgd", [15, 16], "official"),
        "Proxy-Anchor + SGD + Pruning 15,16 + AutoLR": ("sgd", [15, 16], "autolr"),
    }
    body = _table_lines(supplement, 2)[2:]
    assert len(body) == 4
    for line in body:
        cells = _cells(line)
        values = _numbers(cells)
        assert len(values) == 8, line
        for dataset, part in (("cub200", values[:4]), ("cars196", values[4:])):
            row = table2_row(dataset, *keys[cells[0]])
            assert row["method"] == cells[0]
            assert _recalls(row) == part, (cells[0], dataset)
    assert len(rows("table2")) == 8


@needs_supplement
def test_every_table3_cell_matches_the_markdown(supplement):
    """Bug: any Table 3 cell mistyped, or the pruning / AutoLR flag of a row mixed up."""
    body = _table_lines(supplement, 3)
    assert _cells(body[0])[1:] == ["FGVC-CUB", "FGVC-Cars", "FGVC-Aircraft"]
    checked = 0
    for line in body[1:]:
        cells = _cells(line)
        units = re.search(r"Pruning ([\d,]+)", cells[0])
        pruning = [int(u) for u in units.group(1).split(",")] if units else []
        autolr = "AutoLR" in cells[0]
        for dataset, value in zip(["fgvc_cub", "fgvc_cars", "fgvc_aircraft"], _numbers(cells)):
            assert table3_value(dataset, pruning, autolr) == value, (cells[0], dataset)
            checked += 1
    assert checked == 18 == len(rows("table3"))


@needs_supplement
def test_every_table1_cell_matches_the_markdown(supplement):
    """Bug: any Table 1 cell mistyped, or eta stored without the paper's 1e-3 scale."""
    body = [_cells(line) for line in _table_lines(supplement, 1)]
    assert body[0][0] == "Layer"
    fields = ["eta", "eta_tilde", "grad_norm", "grad_norm_tilde", "gamma"]
    scale = {"eta": 1e-3, "eta_tilde": 1e-3}
    for field, cells in zip(fields, body[1:]):
        values = _numbers(cells[1:])
        assert len(values) == 14, cells
        for layer, value in enumerate(values, start=1):
            expected = value * scale.get(field, 1.0)
            assert table1_row(layer)[field] == pytest.approx(expected, rel=1e-12), (field, layer)


def test_proxy_anchor_context_on_sop_and_inshop():
    """Bug: the other papers' SOP / In-Shop numbers mistyped or swapped, or presented as
    ResNet-50 figures (they are Inception-BN)."""
    from dml.paper import context

    assert context("proxy_anchor", "sop") == {"arch": "bn_inception", "R@1": 79.2}
    assert context("proxy_anchor", "inshop") == {"arch": "bn_inception", "R@1": 91.9}
    with pytest.raises(KeyError, match="no context for 'proxy_anchor' on 'cub200'"):
        context("proxy_anchor", "cub200")
