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

from dml.inference.commands.index import main

if __name__ == "__main__":
    raise SystemExit(main())
