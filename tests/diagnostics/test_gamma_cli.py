"""dml.diagnostics.gamma_cli (scripts/gamma_ratio.py) as a user runs it: on a real run
folder, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from dml.diagnostics import gamma_cli
from dml.run import run
from tests.conftest import TINY_OVERRIDES, compose_cfg

ROOT = Path(__file__).resolve().parents[2]


def test_run_dir_gives_table_json_and_png(tmp_path, monkeypatch, capsys):
    """Bug: the run's own config or checkpoint not used (another dataset or the pretrained
    start measured), the markdown and JSON disagreeing, or no figure."""
    cfg = compose_cfg([*TINY_OVERRIDES, f"data_dir={tmp_path / 'data'}", "lr_policy=constant"])
    assert run(cfg, tmp_path / "run") == 0
    capsys.readouterr()
    monkeypatch.chdir(ROOT)  # where a user runs the script from
    code = gamma_cli.main([str(tmp_path / "run"), "logger.progress=false"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr[-2000:]
    out = json.loads((tmp_path / "run" / "gamma_ratio.json").read_text())
    assert out["source"].startswith("synthetic, resnet18, 7 units, run ")
    assert out["source"].split("; ")[0].endswith("last weights")
    md = (tmp_path / "run" / "gamma_ratio.md").read_text()
    ours = md.split("Paper")[0]
    gammas = [ln for ln in ours.splitlines() if ln.startswith("| γ |")][0]
    assert gammas.split(" | ")[1:] == [f"{u['gamma']:.2f}" for u in out["units"]][:-1] + [
        f"{out['units'][-1]['gamma']:.2f} |"
    ]
    assert md in stdout + "\n"
    assert Image.open(tmp_path / "run" / "gamma_ratio.png").size == (840, 480)


def test_bad_targets_are_one_line_errors(tmp_path, capsys):
    """Bug: a typo'd folder or a folder that is not a run ending in a traceback."""
    (tmp_path / "empty").mkdir()
    for args, line in [
        ([str(tmp_path / "nope")], f"error: {tmp_path / 'nope'} is not a folder"),
        ([str(tmp_path / "empty")], f"error: {tmp_path / 'empty'} holds no results.json"),
    ]:
        assert gamma_cli.main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith(line) and len(err.strip().splitlines()) == 1
