"""Writing figures as PNG files: rendered with Agg, written whole or not at all.

Shared by the figures of dml.plots (the AutoLR diagnostics, schedules, alpha x beta heatmap and
retrieval grids), dml.diagnostics.cam and dml.studies.layerwise.
matplotlib is imported inside png_bytes only, so importing dml.logging never loads it.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

from dml.errors import DmlError

DPI = 120

__all__ = ["DPI", "png_bytes", "save_png", "write_png"]


def png_bytes(fig: Any, dpi: int = DPI) -> bytes:
    """A matplotlib Figure as PNG bytes, drawn with Agg whatever the default backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)  # attaches itself to fig
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def write_png(data: bytes, out: Path) -> Path:
    """Write PNG bytes to out (parent folders created); DmlError 'cannot write <out>: ...'."""
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.write_bytes(data)
            # the rename is atomic: a reader sees the old file or the whole new one, never half
            os.replace(tmp, out)
        except BaseException:  # a full disk or Ctrl-C mid-write: leave no stray .tmp behind
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise DmlError(f"cannot write {out}: {_reason(exc)}") from None
    return out


def save_png(fig: Any, out: Path, dpi: int = DPI) -> Path:
    """Render fig and write it to out as write_png does; returns out."""
    return write_png(png_bytes(fig, dpi), out)


def _reason(exc: OSError) -> str:
    """The OS's words without the path (which may be the temporary file's)."""
    if isinstance(exc, FileExistsError):
        # mkdir(exist_ok=True) only raises this when a file stands where a folder should be
        return f"{exc.filename} is a file, not a folder"
    return exc.strerror or str(exc)
