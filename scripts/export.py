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

from dml.inference.commands.export import main

if __name__ == "__main__":
    raise SystemExit(main())
