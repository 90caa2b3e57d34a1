"""Side-by-side performance benchmark: evaluation, trainer overhead and the cost of AutoLR.

    python scripts/bench.py [--quick] [--json bench.json] [--sections eval train autolr]
        [--seeds 1] [--repeat N] [--cheap-mode probe|online] [--out DIR] [--eval-n N]
        [overrides ...]

eval: our Recall@K and MAP@R against a naive reference, PML with faiss and a bare product;
train: the Trainer's images/s against a plain loop; autolr: train.py runs of constant, step
and AutoLR. Writes the JSON (--json) and prints a Markdown table of every measurement; what
each section measures: dml.bench.speed.
"""

from dml.bench.speed import main

if __name__ == "__main__":
    raise SystemExit(main())
