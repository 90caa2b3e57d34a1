"""Search a saved index (scripts/index.py) for the nearest images of a query image or folder.

Usage and options: dml.inference.commands.search (or --help); docs/inference.md.
"""

from dml.inference.commands.search import main

if __name__ == "__main__":
    raise SystemExit(main())
