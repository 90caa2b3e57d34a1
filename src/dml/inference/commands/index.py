"""Embed a folder of images with a trained run and save a faiss index of them.

Usage: python scripts/index.py <run dir> <image folder> --out <index dir>
           [--checkpoint best|last] [--feature embedding|pooled] [--device auto|cpu|cuda]
           [--batch-size N]

JPEG and PNG files are found recursively; others, and files that cannot be decoded, are
skipped with one `warning: skipped <path>: <reason>` line each. When every image lies in a
sub-folder of the image folder, the sub-folder names are the images' classes (labels).
--out must be new, an empty folder, or an index built by the same run and feature: then the
folder's images that are not in it yet are appended. The index holds index.json (run,
checkpoint and its SHA-256, feature, count, classes, dml version) and v<n>/ with index.faiss
(exact inner product over L2-normalised rows, as evaluation searches), embeddings.npy,
paths.json and labels.npy; see docs/inference.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from dml.inference.cli import OneLineParser, run_main
from dml.inference.commands.common import add_run_options, run_name, timed

if TYPE_CHECKING:
    from dml.inference import IndexUpdate, LoadedRun


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="run directory (checkpoints/best.pt, last.pt)")
    p.add_argument("folder", type=Path, help="folder of JPEG/PNG images (searched recursively)")
    p.add_argument("--out", type=Path, required=True, help="index directory to create or extend")
    add_run_options(p)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--batch-size", type=int, default=None, help="default: the run's eval one")
    return p


def add_or_build(run: LoadedRun, args: argparse.Namespace) -> tuple[IndexUpdate, str]:
    """Append the folder to the index at --out, or build one there; what was done, in words."""
    from dml.inference import add_to_index, build_index, is_index

    if is_index(args.out):
        update = add_to_index(run, args.folder, args.out, args.batch_size)
        done = f"appended {update.added} image(s) to {update.index.directory}"
        if update.already:
            done += f" ({update.already} already in it)"
        return update, done
    update = build_index(run, args.folder, args.out, args.batch_size)
    return update, f"indexed {update.added} image(s) into {update.index.directory}"


def index_folder(args: argparse.Namespace) -> int:
    """Build or extend the index; print what was done."""
    from dml.errors import DmlError
    from dml.inference import index_bytes, load_run

    if args.batch_size is not None and args.batch_size < 1:
        raise DmlError(f"--batch-size {args.batch_size}: expected at least 1")
    run = load_run(args.run_dir, args.checkpoint, args.device, args.feature)
    (update, done), seconds = timed(add_or_build, run, args)
    index = update.index
    rate = f", {update.added / seconds:.1f} images/s" if update.added else ""
    classes = f", {len(index.classes)} classes" if index.classes is not None else ", no labels"
    print(f"{done} in {seconds:.2f} s{rate}")
    print(
        f"index: {index.count} images, {index.manifest['dim']}-d {index.feature} features"
        f"{classes}, {index_bytes(index)} bytes ({run_name(run)})"
    )
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (a usage mistake: one `error:` line and exit 2)."""
    return parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Index a folder; return the exit code (2 with one `error:` line for a mistake)."""
    return run_main(index_folder, parser(), argv)
