"""dml.plots.synthetic (scripts/preview_synthetic.py): the contact sheet of a generated set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dml.data.synthetic import generate_synthetic
from dml.plots import synthetic


def test_sheet_shows_each_generated_image_zoomed_in_its_class_row(tmp_path: Path, capsys) -> None:
    """Bug: the sheet sized for the wrong number of rows or columns, tiles smoothed or not
    zoomed, or an image pasted into another class's row or column."""
    out = tmp_path / "sheet.png"
    args = ["--classes", "3", "--per-class", "2", "--image-size", "16", "--zoom", "2"]
    assert synthetic.main([*args, "--out", str(out)]) == 0
    tile, gap = 32, synthetic.GAP
    width, height = synthetic.LABEL_WIDTH + 2 * (tile + gap), 3 * (tile + gap)
    assert capsys.readouterr().out == f"wrote {out} ({width}x{height})\n"
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape == (height, width, 3)
    # the same arguments give byte-identical images: draw them again and find each one
    root = generate_synthetic(
        tmp_path / "data", num_classes=3, images_per_class=2, image_size=16, seed=0
    )
    rows = synthetic.read_rows(root)
    assert [len(paths) for _, paths in rows] == [2, 2, 2]
    for r, (_, paths) in enumerate(rows):
        for c, path in enumerate(paths):
            with Image.open(path) as img:
                want = np.asarray(img.convert("RGB").resize((tile, tile), Image.NEAREST))
            x, y = synthetic.LABEL_WIDTH + c * (tile + gap), r * (tile + gap)
            assert np.array_equal(sheet[y : y + tile, x : x + tile], want), (r, c)


def test_rows_follow_the_numeric_class_id(tmp_path: Path) -> None:
    """Bug: classes sorted as text (10 and 11 before 2), or a row holding another class's
    images."""
    root = generate_synthetic(tmp_path / "data", num_classes=11, images_per_class=1, image_size=16)
    names = dict(line.split(maxsplit=1) for line in (root / "classes.txt").read_text().splitlines())
    labels = dict(
        line.split() for line in (root / "image_class_labels.txt").read_text().splitlines()
    )
    images = dict(line.split(maxsplit=1) for line in (root / "images.txt").read_text().splitlines())
    by_path = {root / "images" / images[i]: c for i, c in labels.items()}
    rows = synthetic.read_rows(root)
    assert [name for name, _ in rows] == [names[str(k)] for k in range(1, 12)]
    for k, (_, paths) in enumerate(rows, start=1):
        assert [by_path[p] for p in paths] == [str(k)]
