"""scripts/cam.py: the Grad-CAM grid of a real tiny AutoLR run, and its one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from dml.diagnostics import cam
from tests.conftest import TINY_OVERRIDES, compose_cfg
from tests.scripts.loader import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cam.py"
UNITS = 7  # resnet18's 8 residual blocks, the last pruned (pruning=last1)


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("cam")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-epoch AutoLR run on 6 tiny synthetic classes (3 test classes of 6 images),
    made through dml.run.run with trainer.save_epoch_weights=true."""
    from dml.run import run

    tmp = tmp_path_factory.mktemp("cam")
    cfg = compose_cfg(
        [
            *TINY_OVERRIDES,
            "trainer.save_epoch_weights=true",
            "trainer.epochs=2",
            "lr_policy=autolr",
            f"data_dir={tmp / 'data'}",
        ]
    )
    GlobalHydra.instance().clear()
    assert run(cfg, tmp / "run") == 0
    return tmp / "run"


def test_grid_of_a_real_run(
    script: ModuleType,
    tiny_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bugs caught: a checkpoint missing from the figure (initial-tune or an epoch), scores
    not the run's (another trial's or epoch's), rows not grouped by image, a column per unit
    missing, the PNG not at the default path or of the wrong size, a figure of images of one
    class, weights never loaded (every checkpoint drawing the same maps)."""
    drawn = {}
    real_draw = cam.draw_grid

    def spy(grid: cam.CamGrid):
        drawn["grid"], drawn["fig"] = grid, real_draw(grid)
        return drawn["fig"]

    monkeypatch.setattr(cam, "draw_grid", spy)
    assert script.main([str(tiny_run)]) == 0
    out = tiny_run / "cam_units.png"
    assert capsys.readouterr().out.strip() == str(out)

    # the checkpoints and their titles, by hand from results.json
    results = json.loads((tiny_run / "results.json").read_text())
    autolr = results["autolr"]
    assert autolr["trials"][0]["epoch"] == 0 and autolr["trials"][0]["trial"] == 0
    expected = [f"initial-tune (score {autolr['trials'][0]['score']:.2f})"] + [
        f"epoch {e['epoch']} (score {e['score']:.2f})" for e in autolr["epochs"]
    ]
    assert [e["epoch"] for e in autolr["epochs"]] == [0, 1]
    grid, fig = drawn["grid"], drawn["fig"]
    assert [c.title for c in grid.checkpoints] == expected

    n, c = 4, 3  # default --images 4 of 3 test classes; initial-tune, epoch 0, epoch 1
    assert grid.maps.shape == (n, c, UNITS, 32, 32)
    assert grid.units == [f"unit{k + 1}" for k in range(UNITS)]
    assert len(set(grid.labels[:3])) == 3  # one image per class before any repeats
    assert len(set(grid.indices)) == n
    # the figure's rows: first-column axes carry the checkpoint titles, grouped by image
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert [label.splitlines()[0] for label in labels] == expected * n
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [
        t for i in range(n) for t in [f"image {i + 1}: class {grid.labels[i]}", *grid.units]
    ]
    assert len(fig.axes) == n * c * (UNITS + 1)
    # the weights differ between checkpoints, so do the cosines
    assert not np.allclose(grid.scores[:, 0], grid.scores[:, -1])

    png = Image.open(out)
    assert png.size[::-1] == cam.canvas_size(n, c, UNITS)
    # one label band and UNITS + 1 tiles across, whatever the number of rows
    width = 2 * cam.MARGIN + cam.LABEL + (UNITS + 1) * cam.CELL + UNITS * cam.GAP
    assert png.size[0] == width


def test_images_and_out_options(
    script: ModuleType, tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bugs caught: --images ignored, a relative --out resolved against the run dir or the
    project root instead of the cwd."""
    monkeypatch.chdir(tmp_path)
    assert script.main([str(tiny_run), "--images", "1", "--out", "one.png"]) == 0
    png = Image.open(tmp_path / "one.png")
    assert png.size[::-1] == cam.canvas_size(1, 3, UNITS)


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_error_without_results(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bug caught: a traceback (FileNotFoundError) for a folder that is not a run."""
    assert script.main([str(tmp_path)]) == 1
    assert "results.json" in error_line(capsys)


def test_error_images_below_one_from_the_command_line(tmp_path: Path) -> None:
    """Bugs caught: --images 0 drawing an empty figure (or a matplotlib error) instead of one
    line; the script's exit code when run as a command."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--images", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: --images=0: must be at least 1"


def test_error_without_weights(
    script: ModuleType, tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bug caught: a run saved without trainer.save_epoch_weights giving a traceback or an
    empty figure instead of saying how to get the weights."""
    bare = tmp_path / "run"
    bare.mkdir()
    shutil.copy(tiny_run / "results.json", bare / "results.json")
    assert script.main([str(bare)]) == 1
    line = error_line(capsys)
    assert line.startswith("error: no weights in ")
    assert line.endswith("re-run with trainer.save_epoch_weights=true")
