"""Export a trained run's embedding model as one file: TorchScript or ONNX.

Usage: python scripts/export.py <run dir> --format torchscript|onnx --out FILE
           [--checkpoint best|last] [--feature embedding|pooled]

The exported model takes float32 images (N, 3, S, S) with RGB values in [0, 1], S the run's
crop size, resized and center-cropped as the run evaluates; it normalises them (ImageNet
mean and std), computes the run's feature (with flip averaging under eval.flip) and returns
L2-normalised (N, D) features. Those settings and the run's identity are stored in the file
(TorchScript: extra file dml.json; ONNX: metadata_props "dml"); see docs/inference.md.
ONNX needs the onnx extra: pip install -e ".[onnx]". An existing FILE is never overwritten.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dml.inference.cli import OneLineParser, run_main
from dml.inference.commands.common import add_run_options, run_name, timed


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="run directory (checkpoints/best.pt, last.pt)")
    p.add_argument("--format", choices=("torchscript", "onnx"), required=True)
    p.add_argument("--out", type=Path, required=True, help="file to write (must not exist)")
    add_run_options(p)
    return p


def export(args: argparse.Namespace) -> int:
    """Load the run on the CPU and write the file; print what it holds."""
    from dml.inference import export_model, load_run

    run = load_run(args.run_dir, args.checkpoint, "cpu", args.feature)
    meta, seconds = timed(export_model, run, args.format, args.out)
    out = args.out.resolve()
    print(
        f"exported {args.format} {out} ({out.stat().st_size} bytes) in {seconds:.2f} s: input "
        f"(N, 3, {meta['input_size']}, {meta['input_size']}) in [0, 1], output (N, {meta['dim']}) "
        f"L2-normalised {meta['feature']} features (flip {str(meta['flip']).lower()}); "
        + run_name(run)
    )
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (a usage mistake: one `error:` line and exit 2)."""
    return parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Export a run; return the exit code (2 with one `error:` line for a mistake)."""
    return run_main(export, parser(), argv)
