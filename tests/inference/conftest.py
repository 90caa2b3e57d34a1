"""Fixtures of the inference tests: the session's tiny run, loaded once per module, and the
command module a tests/inference/commands/ test drives, with its one-line error check."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

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


@pytest.fixture(scope="module")
def script(request: pytest.FixtureRequest) -> ModuleType:
    """dml.inference.commands.<name>, the command that commands/test_<name>.py tests."""
    name = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    return importlib.import_module(f"dml.inference.commands.{name}")


@pytest.fixture
def one_line_error(
    script: ModuleType, capsys: pytest.CaptureFixture[str]
) -> Callable[[list[str], list[str]], None]:
    """A check that script.main(argv) refuses argv as a mistake: exit 2, nothing on stdout,
    one `error:` line on stderr holding every needle."""

    def check(argv: list[str], needles: list[str]) -> None:
        capsys.readouterr()  # what the test printed before is not this call's output
        assert script.main(argv) == 2
        stdout, stderr = capsys.readouterr()
        lines = stderr.strip().splitlines()
        assert stdout == "" and len(lines) == 1 and lines[0].startswith("error: "), stderr
        for needle in needles:
            assert needle in lines[0]

    return check
