"""Fixtures of the inference tests: the session's tiny run, loaded once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.inference.tiny import image_folder, tiny_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny trained run's directory."""
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The written image folder: 2 class sub-folders, a broken PNG, a text file."""
    return image_folder(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(run_dir: Path):
    """The tiny run loaded on the CPU (best.pt); tests that change it take a copy."""
    from dml.inference import load_run

    return load_run(run_dir, device="cpu")
