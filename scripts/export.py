"""Export a trained run's embedding model as one file: TorchScript or ONNX.

Usage and options: dml.inference.commands.export (or --help); docs/inference.md.
"""

from dml.inference.commands.export import main

if __name__ == "__main__":
    raise SystemExit(main())
