"""dml.logging.figures: PNGs written whole or not at all, failures as one line."""

from __future__ import annotations

import errno
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from PIL import Image

from dml.errors import DmlError
from dml.logging import figures
from dml.logging.figures import png_bytes, save_png, write_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def small_figure() -> Figure:
    """A 2 x 1 inch figure with one line: 200 x 100 pixels at dpi 100."""
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


def leftovers(folder: Path) -> list[str]:
    """Names in folder other than the PNGs a test meant to write."""
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".png")


def test_save_png_writes_the_figure_at_dpi_into_new_folders(tmp_path: Path) -> None:
    """Bug: --out's missing folders not created, the dpi argument ignored (wrong pixel size),
    the path returned not the one written, or a .tmp file left beside the PNG."""
    out = tmp_path / "a" / "b" / "fig.png"
    assert save_png(small_figure(), out, dpi=100) == out
    with Image.open(out) as image:
        assert (image.format, image.size) == ("PNG", (200, 100))
    assert leftovers(out.parent) == []


def test_png_bytes_needs_no_pyplot_backend() -> None:
    """Bug: a bare Figure (no pyplot, so no canvas that can print) failing to render, or the
    default dpi not the module's."""
    data = png_bytes(small_figure())
    assert data.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (2 * figures.DPI, 1 * figures.DPI)


def test_write_png_replaces_an_existing_file(tmp_path: Path) -> None:
    """Bug: a second run of a script failing (or appending) because its PNG already exists."""
    out = tmp_path / "fig.png"
    out.write_bytes(b"old")
    write_png(PNG_SIGNATURE + b"new", out)
    assert out.read_bytes() == PNG_SIGNATURE + b"new"
    assert leftovers(tmp_path) == []


def test_failed_write_leaves_the_old_file_and_no_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug: a full disk mid-write leaving a truncated PNG where the previous good one was (or
    a stray .tmp), and the OSError escaping as a traceback instead of one line."""
    out = tmp_path / "fig.png"
    out.write_bytes(b"previous figure")
    real_write_bytes = Path.write_bytes

    def half_then_full(self: Path, data: bytes) -> int:
        real_write_bytes(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(DmlError) as caught:
        write_png(PNG_SIGNATURE * 4, out)
    monkeypatch.undo()
    assert str(caught.value) == f"cannot write {out}: No space left on device"
    assert out.read_bytes() == b"previous figure"
    assert leftovers(tmp_path) == []


def test_out_that_is_a_folder_is_one_line(tmp_path: Path) -> None:
    """Bug: --out naming an existing folder giving an IsADirectoryError traceback, emptying
    the folder, or leaving the temporary file beside it."""
    out = tmp_path / "figs"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(DmlError, match=f"^cannot write {re.escape(str(out))}: Is a directory$"):
        save_png(small_figure(), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figs"]


def test_parent_that_is_a_file_is_one_line_naming_it(tmp_path: Path) -> None:
    """Bug: an --out under a file reported as the puzzling 'File exists' (or a traceback)."""
    blocker = tmp_path / "plots"
    blocker.write_text("a file, not a folder")
    out = blocker / "fig.png"
    with pytest.raises(DmlError) as caught:
        write_png(PNG_SIGNATURE, out)
    assert str(caught.value) == f"cannot write {out}: {blocker} is a file, not a folder"
    assert blocker.read_text() == "a file, not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes whatever the folder's mode")
def test_read_only_folder_is_one_line_without_the_temporary_name(tmp_path: Path) -> None:
    """Bug: the reason naming the hidden temporary file the user never asked for."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(DmlError) as caught:
            write_png(PNG_SIGNATURE, folder / "fig.png")
    finally:
        folder.chmod(0o755)
    assert str(caught.value) == f"cannot write {folder / 'fig.png'}: Permission denied"


def test_dml_logging_imports_without_matplotlib() -> None:
    """Bug: importing dml.logging (so every training run) loading matplotlib at import time."""
    code = (
        "import sys, dml.logging, dml.logging.figures, dml.logging.runs; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert proc.stdout.strip() == "[]"
