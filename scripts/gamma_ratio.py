"""The γ ratio of supplement Table 1 for a config or a run (see dml.diagnostics.gamma).

python scripts/gamma_ratio.py [train.py overrides ...] [--out DIR]
python scripts/gamma_ratio.py <run dir> [key=value ...] [--checkpoint last|best|start]

Writes gamma_ratio.md, gamma_ratio.json and gamma_ratio.png into --out (default: the run
dir, or outputs/gamma/<time>) and prints the markdown table. Which snapshot is measured:
dml.diagnostics.gamma_cli.
"""

from dml.diagnostics.gamma_cli import main

if __name__ == "__main__":
    raise SystemExit(main())
