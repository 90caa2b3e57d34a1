"""Write a PNG contact sheet of the synthetic dataset: one row per class, images side by side.

Example: python scripts/preview_synthetic.py --domain source --out /tmp/source.png
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from dml.data.synthetic import generate_synthetic

LABEL_WIDTH = 330
GAP = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", choices=("target", "source"), default="target")
    parser.add_argument(
        "--out", type=Path, help="PNG file (default: outputs/synthetic_preview_<domain>.png)"
    )
    parser.add_argument("--classes", type=int, default=8, help="rows: classes 1..N")
    parser.add_argument("--per-class", type=int, default=10, help="columns: images per class")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--zoom", type=int, default=2, help="nearest-neighbour display zoom")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def read_rows(root: Path) -> list[tuple[str, list[Path]]]:
    """(class folder name, image paths) per class, in class-id order, from the CUB files."""
    names = dict(line.split(maxsplit=1) for line in _lines(root / "classes.txt"))
    paths = dict(line.split(maxsplit=1) for line in _lines(root / "images.txt"))
    rows: dict[str, list[Path]] = {}
    for line in _lines(root / "image_class_labels.txt"):
        image_id, class_id = line.split()
        rows.setdefault(class_id, []).append(root / "images" / paths[image_id])
    return [(names[c], rows[c]) for c in sorted(rows, key=int)]


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def contact_sheet(rows: list[tuple[str, list[Path]]], zoom: int) -> Image.Image:
    """Grid with a text label per row, images zoomed without smoothing so pixels stay honest."""
    with Image.open(rows[0][1][0]) as first:
        tile = first.width * zoom
    cols = max(len(paths) for _, paths in rows)
    sheet = Image.new(
        "RGB",
        (LABEL_WIDTH + cols * (tile + GAP), len(rows) * (tile + GAP)),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(sheet)
    for r, (name, paths) in enumerate(rows):
        y = r * (tile + GAP)
        draw.text((4, y + tile // 2 - 6), name, fill=(0, 0, 0))
        for c, path in enumerate(paths):
            with Image.open(path) as img:
                big = img.convert("RGB").resize((tile, tile), Image.Resampling.NEAREST)
            sheet.paste(big, (LABEL_WIDTH + c * (tile + GAP), y))
    return sheet


def main(argv: list[str] | None = None) -> int:
    """Generate a small dataset in a temporary folder and write its contact sheet."""
    args = parse_args(argv)
    out = args.out or Path("outputs") / f"synthetic_preview_{args.domain}.png"
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_synthetic(
            Path(tmp) / "data",
            domain=args.domain,
            num_classes=args.classes,
            images_per_class=args.per_class,
            image_size=args.image_size,
            seed=args.seed,
        )
        sheet = contact_sheet(read_rows(root), args.zoom)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(f"wrote {out} ({sheet.width}x{sheet.height})")
    return 0
