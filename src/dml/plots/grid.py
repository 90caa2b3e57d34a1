"""Retrieval grids as PNGs: one row per query (blue frame), its neighbours framed by class.

Shared by dml.plots.retrievals (test-split queries of a run) and dml.inference.search
(queries against a saved index). Tiles are the original image files, letterboxed; the
figure is drawn 1:1 in output pixels, so every tile sits at a known position
(tile_origin) and tests can read frame colours back from the PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dml.errors import DmlError
from dml.logging.figures import png_bytes

# Frame colours (RGB): blue query, green same class, red other class (ColorBrewer RdYlBu ends);
# grey where a neighbour's class is unknown (a query without a label).
QUERY_RGB = (33, 102, 172)
SAME_RGB = (26, 152, 80)
OTHER_RGB = (215, 48, 39)
UNKNOWN_RGB = (150, 150, 150)
BACKGROUND_RGB = (255, 255, 255)
LETTERBOX_RGB = (235, 235, 235)

# Layout in output pixels: the figure is drawn 1:1, so tiles sit at known positions.
TILE = 96  # image area of a tile
FRAME = 5  # frame width around each tile
GAP = 8  # between tiles
QUERY_GAP = 28  # extra space between the query column and its neighbours
CAPTION = 30  # text band above each row of tiles
TITLE = 26  # title band at the top
MARGIN = 10
DPI = 100

__all__ = [
    "BACKGROUND_RGB",
    "CAPTION",
    "DPI",
    "FRAME",
    "GAP",
    "LETTERBOX_RGB",
    "MARGIN",
    "OTHER_RGB",
    "QUERY_GAP",
    "QUERY_RGB",
    "SAME_RGB",
    "TILE",
    "TITLE",
    "UNKNOWN_RGB",
    "canvas_size",
    "frame_colour",
    "load_tile",
    "render",
    "tile_origin",
]


def load_tile(path: Path) -> np.ndarray:
    """The original image scaled to fit TILE x TILE (aspect kept, letterboxed), as RGB uint8."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            image = img.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise DmlError(f"cannot read image {path}: {exc}") from None
    scale = TILE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # Small images (the synthetic twin's 32-64 px) stay crisp with nearest-neighbour upscaling.
    resample = Image.NEAREST if scale >= 2 else Image.BICUBIC
    image = image.resize(size, resample)
    tile = np.full((TILE, TILE, 3), LETTERBOX_RGB, dtype=np.uint8)
    top, left = (TILE - size[1]) // 2, (TILE - size[0]) // 2
    tile[top : top + size[1], left : left + size[0]] = np.asarray(image)
    return tile


def tile_origin(row: int, col: int) -> tuple[int, int]:
    """(y, x) of the top-left pixel of the frame of tile (row, col); col 0 is the query."""
    x = MARGIN + col * (TILE + 2 * FRAME + GAP) + (QUERY_GAP if col > 0 else 0)
    y = TITLE + row * (CAPTION + TILE + 2 * FRAME + GAP) + CAPTION
    return y, x


def canvas_size(rows: int, k: int) -> tuple[int, int]:
    """(height, width) in pixels of a grid of rows queries with k neighbours each."""
    y, x = tile_origin(rows - 1, k)
    return y + TILE + 2 * FRAME + MARGIN, x + TILE + 2 * FRAME + MARGIN


def frame_colour(same: bool | None) -> tuple[int, int, int]:
    """A neighbour's frame: green same class, red other class, grey unknown (None)."""
    if same is None:
        return UNKNOWN_RGB
    return SAME_RGB if same else OTHER_RGB


def render(
    tiles: Sequence[Sequence[np.ndarray]],
    same: Sequence[Sequence[bool | None]],
    captions: Sequence[Sequence[str]],
    title: str,
) -> bytes:
    """The grid as PNG bytes: row r holds tiles[r] (query first, then its k neighbours), the
    neighbours framed by same[r][j], each tile captioned by captions[r][c] above it."""
    rows, k = len(tiles), len(tiles[0]) - 1
    height, width = canvas_size(rows, k)
    canvas = np.full((height, width, 3), BACKGROUND_RGB, dtype=np.uint8)
    side = TILE + 2 * FRAME
    for r in range(rows):
        for c in range(k + 1):
            colour = QUERY_RGB if c == 0 else frame_colour(same[r][c - 1])
            y, x = tile_origin(r, c)
            canvas[y : y + side, x : x + side] = colour
            canvas[y + FRAME : y + FRAME + TILE, x + FRAME : x + FRAME + TILE] = tiles[r][c]

    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest", extent=(0, width, height, 0))
    ax.set_axis_off()
    ax.text(MARGIN, TITLE / 2, title, va="center", ha="left", fontsize=9)
    for r in range(rows):
        for c in range(k + 1):
            y, x = tile_origin(r, c)
            ax.text(x, y - 4, captions[r][c], va="bottom", fontsize=7)
    return png_bytes(fig, DPI)
