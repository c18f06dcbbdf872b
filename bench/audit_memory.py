"""Peak memory of the audit scorer's (N, K) steps on synthetic codes and labels.

    .venv/bin/python bench/audit_memory.py [--n 200000] [--leaves 960]
                                           [--step code_probs|knn_probs|pooled|best_other|text_features]
                                           [--max-fit N]

One step per process (peak RSS is per process): the codes' label make-up (`code_probs`), the neighbours'
vote (`knn_probs`), the log-linear pool of three signals (`pooled`), the suggested category (`best_other`),
or the classifiers' text features of `bench/scale.py`'s synthetic names and brands (`text_features`, the SVD
fitted on at most `--max-fit` of them; 0 = all). Prints the step's time and the process's peak RSS above
what the inputs took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # after the repo: bench/audit.py must not hide the audit app

from common import peak_rss_mib  # noqa: E402

from audit.core.scoring import (  # noqa: E402
    TEXT_FIT_ROWS, SignalParams, best_other, code_probs, knn_probs, pooled, text_features,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--leaves", type=int, default=960)
    parser.add_argument("--step", default="code_probs", choices=("code_probs", "knn_probs", "pooled", "best_other", "text_features"))
    parser.add_argument("--max-fit", type=int, default=TEXT_FIT_ROWS, help="text_features: rows the SVD is fitted on")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, args.leaves, args.n)
    if args.step == "code_probs":
        codes = np.stack([rng.integers(0, 256, args.n) for _ in range(4)], 1)
        prior = np.full(args.leaves, 1.0 / args.leaves)
        before = peak_rss_mib()
        started = time.perf_counter()
        code_probs(codes, labels, args.leaves, prior, SignalParams())
    elif args.step == "knn_probs":
        neighbours = rng.integers(0, args.n, (args.n, 10))
        sims = rng.uniform(0.3, 1.0, (args.n, 10)).astype(np.float32)
        labels = np.maximum(labels, 0)
        prior = np.full(args.leaves, 1.0 / args.leaves)
        before = peak_rss_mib()
        started = time.perf_counter()
        knn_probs(neighbours, sims, labels, args.leaves, prior, SignalParams())
    elif args.step == "pooled":
        probs = {s: rng.random((args.n, args.leaves), dtype=np.float32) for s in ("classifier", "codes", "knn")}
        before = peak_rss_mib()
        started = time.perf_counter()
        pooled(probs, {"classifier": 0.7, "codes": 0.05, "knn": 0.35})
    elif args.step == "text_features":
        from scale import synthetic_words

        leaf = rng.integers(0, args.leaves, args.n)
        texts, _ = synthetic_words(np.stack([leaf // 80, leaf // 10, leaf], 1))
        before = peak_rss_mib()
        started = time.perf_counter()
        text_features(texts, max_fit=args.max_fit)
    else:
        probs = rng.random((args.n, args.leaves), dtype=np.float32)
        before = peak_rss_mib()
        started = time.perf_counter()
        best_other(probs, labels)
    seconds = time.perf_counter() - started
    print(f"{args.step}: N={args.n:,} K={args.leaves}: {seconds:.1f} s, peak RSS +{peak_rss_mib() - before:,.0f} MiB "
          f"(one float32 (N, K) array: {args.n * args.leaves * 4 / 2**20:,.0f} MiB)")


if __name__ == "__main__":
    main()
