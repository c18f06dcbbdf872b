"""The best Spearman any code could reach given how many pairs share 0..L levels.

    .venv/bin/python bench/studies/spearman_ceiling.py [--dataset bigbasket] [--flavor precision]

Samples the pairs exactly as ``intrinsic_metrics`` does (seed 0: half random pairs, half pairs among
each product's 20 nearest neighbours), codes them with residual k-means 4 x 256, and compares the
measured Spearman with an oracle that hands out the same depth counts in order of cosine, and with
oracles for other depth distributions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py
import common  # noqa: E402

from quantizer.core import residual_kmeans  # noqa: E402
from quantizer.core.metrics import _neighbours, shared_prefix_levels  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="bigbasket")
    parser.add_argument("--flavor", default="precision")
    args = parser.parse_args()
    x = common.embed_dataset(common.load_dataset(args.dataset), args.flavor)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    n, rng, half = len(x), np.random.default_rng(0), 10000
    anchors = np.sort(rng.choice(n, min(n, 10000), replace=False))
    knn_idx, _, _ = _neighbours(xn, anchors, 20)
    ri = rng.integers(0, n, half)
    rj = (ri + rng.integers(1, n, half)) % n
    pick = rng.integers(0, len(anchors), half)
    pi = np.concatenate([ri, anchors[pick]])
    pj = np.concatenate([rj, knn_idx[pick, rng.integers(0, knn_idx.shape[1], half)]])
    cos = (xn[pi] * xn[pj]).sum(1)
    codes = residual_kmeans(x, (256,) * 4, seed=0, spread=False, near_duplicate_threshold=0.0)  # as measured
    depth = shared_prefix_levels(codes[pi], codes[pj])
    counts = np.bincount(depth, minlength=5)
    print(f"residual k-means: depth counts {counts.tolist()}, Spearman {spearmanr(cos, depth).statistic:.3f}")
    order = np.argsort(cos)
    for target in (counts.tolist(), [10000, 2500, 2500, 2500, 2500], [10000, 4000, 3000, 2000, 1000]):
        oracle = np.empty(len(cos), dtype=np.int64)
        oracle[order] = np.repeat(np.arange(5), target)
        print(f"oracle with depth counts {target}: Spearman {spearmanr(cos, oracle).statistic:.3f}")


if __name__ == "__main__":
    main()
