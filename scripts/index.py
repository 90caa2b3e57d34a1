"""Embed a folder of images with a trained run and save a faiss index of them.

Usage and options: dml.inference.commands.index (or --help); docs/inference.md.
"""

from dml.inference.commands.index import main

if __name__ == "__main__":
    raise SystemExit(main())
