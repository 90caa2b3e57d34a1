"""Time dml.evaluation.recall_at_k on random embeddings and report peak resident memory."""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from dml.evaluation import recall_at_k


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=60000, help="number of embeddings")
    parser.add_argument("--d", type=int, default=512, help="embedding dimension")
    parser.add_argument("--classes", type=int, default=100, help="number of labels")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run one timed recall_at_k call and print a single summary line."""
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    # Drawn directly as float32 so set-up does not inflate the peak with a float64 copy.
    emb = rng.standard_normal((args.n, args.d), dtype=np.float32)
    labels = rng.integers(0, args.classes, args.n)
    rss_before = peak_rss_mib()
    start = time.perf_counter()
    recalls = recall_at_k(emb, labels, ks=args.ks)
    seconds = time.perf_counter() - start
    shown = " ".join(f"R@{k}={v:.4f}" for k, v in recalls.items())
    print(
        f"recall_at_k N={args.n} D={args.d} classes={args.classes}: {seconds:.2f} s, "
        f"peak RSS {peak_rss_mib():.1f} MiB (before call {rss_before:.1f} MiB) {shown}"
    )


if __name__ == "__main__":
    main()
