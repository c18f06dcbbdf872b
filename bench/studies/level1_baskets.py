"""Why one training in three kept the baskets out of level 1 (issue 20): popularity.

For each cached set of "rqvae_cp" codes (bench/baskets_data.semantic_codes, the weight given):
- the held-out protocol of bench/baskets_complements.py (anchors: products in >= --min-baskets of a tenth of the
  orders, partners by lift in it) run on three tenth-sized draws of the TRAINING orders beside the test tenth:
  the share of partners that share the anchor's level-1 code. Alike on all four: the spread between trainings is
  the codes', not the held-out orders';
- the "staples" code: how many of the 1,000 products most bought in the training orders the largest level-1
  code holds (of its size);
- on the scored tenth (--scored: test, or validation to choose on), the share of partners in the anchor's level-1
  code beside that of their same-popularity decoys (baskets_complements.SamePopularity), the same for the tree's
  aisles and departments, and the same-popularity AUC of the IDs by prefix and by prefix then codewords (the
  benchmark's last column, without its slow reach rankings).

    OMP_NUM_THREADS=2 .venv/bin/python bench/studies/level1_baskets.py --flavors precision --seeds 0 1 2 3 4 --copurchase-weight 2
    OMP_NUM_THREADS=2 .venv/bin/python bench/studies/level1_baskets.py --flavors discovery --seeds 0 1 2 --copurchase-weight 2
    for w in 1 2 3; do
        OMP_NUM_THREADS=2 .venv/bin/python bench/studies/level1_baskets.py --flavors precision --seeds 0 1 2 \
            --copurchase-weight $w --scored validation
    done

OMP_NUM_THREADS matters: the co-purchase embedding's SVD gives other last bits on another thread count, so
other cached codes (the runs in docs/baskets.md used 2). The weight defaults to the application's (1); the
trainings this study explains were weighed 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import baskets_data as bd  # noqa: E402
import common  # noqa: E402
from baskets_complements import (  # noqa: E402
    Anchors,
    SamePopularity,
    group_ids,
    prefix_then_codeword,
    shared_levels,
    top_lift_anchors,
)

from baskets.core.copurchase import copurchase_embedding, orders_lift  # noqa: E402

STAPLES = 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flavors", nargs="+", default=["precision", "discovery"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--copurchase-weight", type=float, default=bd.COPURCHASE_WEIGHT)
    parser.add_argument("--min-baskets", type=int, default=20)
    parser.add_argument("--partners", type=int, default=10)
    parser.add_argument("--scored", default="test", choices=["validation", "test"])
    args = parser.parse_args()

    ds = common.load_dataset("instacart")
    train, scored = bd.split(bd.load_baskets(ds), scored=args.scored)
    _, bought = orders_lift(train, len(ds))
    learned = copurchase_embedding(train, len(ds))
    draws = np.random.default_rng(0).permutation(len(train))
    tenths = [[train[i] for i in draws[k::8]] for k in range(3)] + [scored]  # 8 draws of a tenth's size; 3 used
    tree = group_ids(ds.taxonomy)
    protocols = []
    for orders in tenths:
        lift, counted = orders_lift(orders, len(ds))
        _, anchors, partners = top_lift_anchors(ds, lift, counted, args.min_baskets, args.partners)
        protocols.append(Anchors(anchors, partners, tree[:, 0]))
    an = protocols[-1]
    same = SamePopularity(an, bought)
    pa, pp = an.ids[an.pair_anchor[same.keep]], an.pair_partner[same.keep]

    def partners_and_decoys(g: np.ndarray) -> str:
        return f"{(g[pa] == g[pp]).mean():.3f} / {(g[pa][:, None] == g[same.decoys]).mean():.3f}"

    staples = same.rank < STAPLES
    print(f"anchors: {', '.join(f'{len(p.ids):,}' for p in protocols)} "
          f"(three training draws, the {args.scored} tenth); "
          f"same-popularity partners {len(pa):,}; partners / decoys in the anchor's aisle "
          f"{partners_and_decoys(tree[:, 1])}, department {partners_and_decoys(tree[:, 0])}")
    print(f"tree's same-popularity AUC {same.auc(shared_levels(tree)):.3f}; "
          f"copurchase weight {args.copurchase_weight:g}")
    print(f"| flavor | seed | level-1 share, training draws 1-3 | {args.scored} tenth | largest level-1 code: "
          "staples / size | level 1: partners / same-popularity decoys | "
          "same-popularity AUC: prefix / then codewords |")
    print("|---|---|---|---|---|---|---|")
    for flavor in args.flavors:
        x = common.embed_dataset(ds, flavor)
        for seed in args.seeds:
            codes, z = bd.semantic_codes(ds, x, flavor, "rqvae_cp", seed, copurchase=learned, vectors=True,
                                         copurchase_weight=args.copurchase_weight)
            groups = group_ids(codes)
            first = codes[:, 0]
            shares = [p.mean_share((first[p.ids[p.pair_anchor]] == first[p.pair_partner]).astype(float))
                      for p in protocols]
            held = np.bincount(first[staples], minlength=first.max() + 1)
            top = int(held.argmax())
            print(f"| {flavor} | {seed} | {', '.join(f'{s:.3f}' for s in shares[:-1])} | {shares[-1]:.3f} | "
                  f"{held[top]:,} / {np.sum(first == top):,} | {partners_and_decoys(first)} | "
                  f"{same.auc(shared_levels(groups)):.3f} / {same.auc(prefix_then_codeword(groups, z)):.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
