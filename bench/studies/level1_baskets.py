"""Can a training that keeps the baskets out of level 1 be told apart without the held-out orders? (issue 20)

For each cached set of "rqvae_cp" codes (bench/baskets_data.semantic_codes, the weight given), the share of
top-lift partners in the TRAINING orders that share the anchor's level-1 code, beside the level-1 set size
(the same anchors rule as bench/baskets_complements.py, on the training 80%). A training whose level-1 codes
follow the baskets should show it on the orders it learned from; the held-out figures are in docs/baskets.md.

    OMP_NUM_THREADS=2 .venv/bin/python bench/studies/level1_baskets.py --flavors precision discovery --seeds 0 1 2 --copurchase-weight 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import baskets_data as bd  # noqa: E402
import common  # noqa: E402
from baskets_complements import top_lift_anchors  # noqa: E402

from baskets.core.copurchase import copurchase_embedding, orders_lift  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flavors", nargs="+", default=["precision", "discovery"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--copurchase-weight", type=float, default=bd.COPURCHASE_WEIGHT)
    parser.add_argument("--min-baskets", type=int, default=20)
    parser.add_argument("--partners", type=int, default=10)
    args = parser.parse_args()

    ds = common.load_dataset("instacart")
    train, _ = bd.split(bd.load_baskets(ds))
    lift, bought = orders_lift(train, len(ds))
    _, anchors, partners = top_lift_anchors(ds, lift, bought, args.min_baskets, args.partners)
    learned = copurchase_embedding(train, len(ds))
    print(f"{len(anchors):,} anchors in the {len(train):,} training orders")
    print("| flavor | seed | level-1 codes used | mean level-1 set of an anchor | training partners sharing level 1 |")
    print("|---|---|---|---|---|")
    for flavor in args.flavors:
        x = common.embed_dataset(ds, flavor)
        for seed in args.seeds:
            codes = bd.semantic_codes(ds, x, flavor, "rqvae_cp", seed, copurchase=learned,
                                      copurchase_weight=args.copurchase_weight)
            first = codes[:, 0]
            sizes = np.bincount(first)
            shared = np.mean([np.mean(first[p] == first[a]) for a, p in zip(anchors, partners)])
            print(f"| {flavor} | {seed} | {len(np.unique(first))} | {sizes[first[anchors]].mean():,.0f} | "
                  f"{shared:.3f} |", flush=True)


if __name__ == "__main__":
    main()
