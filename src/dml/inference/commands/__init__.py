"""The inference commands (scripts/index.py, search.py, export.py): options and output."""
