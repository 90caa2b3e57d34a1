"""Grad-CAM of every unit of a run's backbone, from initial-tune to the last epoch.

Usage: python scripts/cam.py <run_dir> [--images 4] [--out PNG]

Needs a run made with trainer.save_epoch_weights=true: it draws the weights after epoch 0's
first trial ("initial-tune", one LR for every unit) and after every accepted epoch
(<run_dir>/checkpoints/weights/). For N test images from different classes, each row of the
PNG (default <run_dir>/cam_units.png) is one (image, checkpoint) pair, labelled with the
checkpoint and its AutoLR sorting score: the image, then the Grad-CAM map at the output of
each unit, of the cosine between the image's retrieval feature and its class centroid (see
dml.diagnostics.cam). The supplement's Figure 3 (section F) is this kind of figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dml.errors import DmlError

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="run directory holding results.json")
    parser.add_argument("--images", type=int, default=4, help="test images (from N classes)")
    parser.add_argument("--out", type=Path, default=None, help="PNG (default <run>/cam_units.png)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Draw the Grad-CAM grid of a run; return the exit code."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse exits on bad usage; callers of main() get a code
        return int(exc.code or 0)
    if args.images < 1:
        print(f"error: --images={args.images}: must be at least 1", file=sys.stderr)
        return 1
    from dml.diagnostics.cam import cam_figure

    try:
        # a run's relative data paths are relative to the project root, where train.py runs
        out = cam_figure(args.run_dir.resolve(), args.images, args.out, base=ROOT)
    except DmlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
