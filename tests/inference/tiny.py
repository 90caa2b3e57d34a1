"""One tiny trained run and an image folder the tests write, each built once per session.

A module-level cache rather than a module-scoped fixture, so the run is trained once
however the tests of tests/inference/ (and its commands/ folder) are selected.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from tests.conftest import TINY_OVERRIDES, compose_cfg

_CACHE: dict[str, Path] = {}

# 6 synthetic classes at 32 px, one epoch, no pretrained weights; test classes 4-6
TEST_CLASSES = ("004", "005")  # the two class folders of the written image folder
BROKEN = "broken.png"  # a PNG cut short: listed as an image, cannot be decoded
NOTES = "notes.txt"  # not an image at all


def tiny_run(factory: pytest.TempPathFactory) -> Path:
    """A real one-epoch run (checkpoints/best.pt and last.pt, results.json)."""
    if "run" not in _CACHE:
        from dml.run import run

        base = factory.mktemp("inference_run")
        cfg = compose_cfg([*TINY_OVERRIDES, f"data_dir={base / 'data'}"])
        GlobalHydra.instance().clear()
        with contextlib.redirect_stdout(io.StringIO()):
            code = run(cfg, base / "run")
        assert code == 0, (base / "run" / "results.json").read_text()
        _CACHE["run"] = base / "run"
    return _CACHE["run"]


def image_folder(factory: pytest.TempPathFactory) -> Path:
    """Two class sub-folders of 6 real PNGs each (the run's test classes 4 and 5), one
    truncated PNG in the first, one text file at the top: 12 readable images of 14 files."""
    if "images" not in _CACHE:
        run = tiny_run(factory)
        source = next((run.parent / "data" / "synthetic").glob("target_*")) / "images"
        folder = factory.mktemp("inference_images") / "images"
        for prefix in TEST_CLASSES:
            cls = next(source.glob(f"{prefix}.*"))
            shutil.copytree(cls, folder / cls.name)
        first = sorted(folder.iterdir())[0]
        good = sorted(first.iterdir())[0].read_bytes()
        (first / BROKEN).write_bytes(good[: len(good) // 3])
        (folder / NOTES).write_text("not an image\n")
        _CACHE["images"] = folder
    return _CACHE["images"]


def other_run(run_dir: Path, dest: Path, shift: float = 0.05) -> Path:
    """A copy of run_dir whose checkpoints hold different weights (the head shifted)."""
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("tb"))
    for name in ("best.pt", "last.pt"):
        path = dest / "checkpoints" / name
        state = torch.load(path, map_location="cpu", weights_only=False)
        state["model"]["head.weight"] = state["model"]["head.weight"] + shift
        torch.save(state, path)
    return dest
