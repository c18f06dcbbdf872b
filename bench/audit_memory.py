"""Peak memory of the audit scorer's (N, K) steps on synthetic codes and labels.

    .venv/bin/python bench/audit_memory.py [--n 200000] [--leaves 960] [--step code_probs|knn_probs|pooled|best_other]

One step per process (peak RSS is per process): the codes' label make-up (`code_probs`), the neighbours'
vote (`knn_probs`), the log-linear pool of three signals (`pooled`) or the suggested category (`best_other`). Prints the step's time and the process's peak RSS above what the inputs took.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.core.scoring import SignalParams, best_other, code_probs, knn_probs, pooled  # noqa: E402


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--leaves", type=int, default=960)
    parser.add_argument("--step", default="code_probs", choices=("code_probs", "knn_probs", "pooled", "best_other"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, args.leaves, args.n)
    if args.step == "code_probs":
        codes = np.stack([rng.integers(0, 256, args.n) for _ in range(4)], 1)
        prior = np.full(args.leaves, 1.0 / args.leaves)
        before = rss_mib()
        started = time.perf_counter()
        code_probs(codes, labels, args.leaves, prior, SignalParams())
    elif args.step == "knn_probs":
        neighbours = rng.integers(0, args.n, (args.n, 10))
        sims = rng.uniform(0.3, 1.0, (args.n, 10)).astype(np.float32)
        labels = np.maximum(labels, 0)
        prior = np.full(args.leaves, 1.0 / args.leaves)
        before = rss_mib()
        started = time.perf_counter()
        knn_probs(neighbours, sims, labels, args.leaves, prior, SignalParams())
    elif args.step == "pooled":
        probs = {s: rng.random((args.n, args.leaves), dtype=np.float32) for s in ("classifier", "codes", "knn")}
        before = rss_mib()
        started = time.perf_counter()
        pooled(probs, {"classifier": 0.7, "codes": 0.05, "knn": 0.35})
    else:
        probs = rng.random((args.n, args.leaves), dtype=np.float32)
        before = rss_mib()
        started = time.perf_counter()
        best_other(probs, labels)
    seconds = time.perf_counter() - started
    print(f"{args.step}: N={args.n:,} K={args.leaves}: {seconds:.1f} s, peak RSS +{rss_mib() - before:,.0f} MiB "
          f"(one float32 (N, K) array: {args.n * args.leaves * 4 / 2**20:,.0f} MiB)")


if __name__ == "__main__":
    main()
