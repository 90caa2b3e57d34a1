"""Check that the synthetic twin behaves like ImageNet->CUB: transfer, layer premise, noise.

    python scripts/check_synthetic.py --seeds 3 --json check.json          # the CPU twin
    python scripts/check_synthetic.py --scale paper --json paper.json      # on a GPU

Runs constant, step and AutoLR with the premise runs (dml.studies.premise) as train.py
subprocesses, writes the metrics to the JSON and a PNG of the R@1 curves beside the runs, and
exits 1 when a target is missed. What each scale runs and its targets: dml.studies.twin.
"""

from dml.studies.twin import main

if __name__ == "__main__":
    raise SystemExit(main())
