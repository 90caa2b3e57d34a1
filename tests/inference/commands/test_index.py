"""scripts/index.py: a folder indexed and appended from the command line; one-line errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from dml.inference import index_bytes, open_index
from dml.inference.index import MANIFEST
from tests.inference.tiny import BROKEN, NOTES, other_run

ROOT = Path(__file__).resolve().parents[3]


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]


def test_index_then_index_again(
    script: ModuleType,
    run_dir: Path,
    images: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bugs caught: the summary misreporting the count, classes or size on disk; skipped files
    not named on stderr; a second run over the same folder duplicating every image or
    rebuilding the index instead of appending nothing."""
    out = tmp_path / "idx"
    assert script.main([str(run_dir), str(images), "--out", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    index = open_index(out)
    lines = stdout.splitlines()
    assert re.fullmatch(
        rf"indexed 12 image\(s\) into {out} in [0-9.]+ s, [0-9.]+ images/s", lines[0]
    )
    assert lines[1] == (
        f"index: 12 images, 128-d embedding features, 2 classes, {index_bytes(index)} bytes "
        f"(run {run_dir}, best.pt)"
    )
    broken = next(images.glob(f"*/{BROKEN}"))
    assert [ln for ln in _lines(stderr) if ln.startswith("warning:")] == [
        f"warning: skipped {images / NOTES}: not a JPEG or PNG file",
        f"warning: skipped {broken}: cannot decode: image file is truncated",
        "warning: skipped 2 of 14 file(s)",
    ]
    assert script.main([str(run_dir), str(images), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith(f"appended 0 image(s) to {out} (12 already in it) in ")
    again = open_index(out)
    assert (again.count, again.manifest["generation"], again.paths) == (12, 1, index.paths)


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("missing_run", ["run directory not found"]),
        ("no_checkpoints", ["has no checkpoint best.pt"]),
        ("empty_folder", ["no JPEG or PNG images in"]),
        ("out_holds_files", ["already holds other files"]),
        ("other_run", ["was built with", "not with"]),
        ("bad_checkpoint", ["argument --checkpoint: invalid choice: 'final'"]),
        ("bad_batch", ["--batch-size 0: expected at least 1"]),
        ("no_out", ["the following arguments are required: --out"]),
    ],
)
def test_errors_are_one_line(
    script: ModuleType,
    run_dir: Path,
    images: Path,
    tmp_path: Path,
    one_line_error: Callable[[list[str], list[str]], None],
    case: str,
    needles: list[str],
) -> None:
    """Bugs caught: a traceback or usage block instead of one `error:` line with exit 2, and
    a refused --out (files of the user's, or another run's index) changed anyway."""
    run, folder, out = run_dir, images, tmp_path / "idx"
    extra: list[str] = []
    if case == "missing_run":
        run = tmp_path / "nope"
    elif case == "no_checkpoints":
        run = tmp_path / "run"
        run.mkdir()
    elif case == "empty_folder":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif case == "out_holds_files":
        out.mkdir()
        (out / "notes.md").write_text("mine")
    elif case == "other_run":
        assert script.main([str(run_dir), str(images), "--out", str(out)]) == 0
        run = other_run(run_dir, tmp_path / "other")
    elif case == "bad_checkpoint":
        extra = ["--checkpoint", "final"]
    elif case == "bad_batch":
        extra = ["--batch-size", "0"]
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    argv = [str(run), str(folder), *(["--out", str(out)] if case != "no_out" else []), *extra]
    one_line_error(argv, needles)
    after = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    assert after == before
    if case == "other_run":
        assert open_index(out).count == 12 and (out / MANIFEST).is_file()


def test_cli_error_has_no_traceback(tmp_path: Path, script_cli) -> None:
    """Bug caught: the one-line error only from main(), a traceback from the script."""
    script = ROOT / "scripts" / "index.py"
    proc = script_cli(script, str(tmp_path / "nope"), ".", "--out", str(tmp_path / "idx"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: run directory not found: {tmp_path / 'nope'}"
    assert not (tmp_path / "idx").exists()
