"""results.json, as real runs write it, against its written schema (results.schema.json)."""

from __future__ import annotations

import copy
import json
from importlib import resources

import jsonschema
import pytest

from dml.run import run
from tests.conftest import TINY_OVERRIDES, compose_cfg

SCHEMA = json.loads(resources.files("dml.logging").joinpath("results.schema.json").read_text())


@pytest.fixture(scope="module")
def completed(tmp_path_factory) -> dict:
    """results.json of a 2-epoch AutoLR run (val selection, re-run trials) on tiny data."""
    base = tmp_path_factory.mktemp("schema")
    cfg = compose_cfg(
        [*TINY_OVERRIDES, f"data_dir={base / 'data'}", "trainer.epochs=2", "autolr.max_trials=2"]
    )
    assert run(cfg, base / "run") == 0
    return json.loads((base / "run" / "results.json").read_text())


def test_a_completed_autolr_run_matches_the_schema(completed):
    """Catches results.json drifting from what aggregators and report.py read (a renamed key,
    recalls in percent, LRs as a list, a missing selection)."""
    jsonschema.validate(completed, SCHEMA)
    assert completed["status"] == "completed" and len(completed["history"]) == 2


@pytest.mark.parametrize(
    "breakage",
    ["recall_in_percent", "no_selection", "multi_line_error", "unknown_status", "lr_as_list"],
)
def test_the_schema_rejects_what_it_should(completed, breakage):
    """Catches a schema so loose that it accepts broken files (then it checks nothing)."""
    bad = copy.deepcopy(completed)
    if breakage == "recall_in_percent":
        bad["metrics"]["final"]["R@1"] = 65.13
    elif breakage == "no_selection":
        del bad["selection"]
    elif breakage == "multi_line_error":
        bad.update(status="failed", error="line one\nline two")
    elif breakage == "unknown_status":
        bad["status"] = "done"
    else:
        bad["history"][0]["lr"] = [0.001, 0.01]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


def test_a_failed_run_matches_the_schema(tmp_path):
    """Catches a failure ending without its one-line error or wall time in results.json."""
    cfg = compose_cfg([*TINY_OVERRIDES, f"data_dir={tmp_path / 'data'}", "eval.ks=[1,500]"])
    assert run(cfg, tmp_path / "run") == 1
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    jsonschema.validate(saved, SCHEMA)
    assert saved["status"] == "failed"


def test_a_classification_run_matches_the_schema(tmp_path):
    """Catches the schema refusing task=classification's top1 metrics (or accepting top-1 in
    percent, or a block with no headline metric at all)."""
    cfg = compose_cfg(
        [
            *TINY_OVERRIDES,
            f"data_dir={tmp_path / 'data'}",
            "task=classification",
            "loss=softmax",
            "lr_policy=constant",
        ]
    )
    assert run(cfg, tmp_path / "run") == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    jsonschema.validate(res, SCHEMA)
    assert set(res["history"][0]) >= {"top1"} and "R@1" not in res["history"][0]
    for block in ({"top1": 41.0}, {}, {"MAP@R": 0.5}):
        bad = copy.deepcopy(res)
        bad["metrics"]["final"] = block
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)
