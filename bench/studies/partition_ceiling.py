"""How well can a partition of the catalog tell co-purchase partners, at equal popularity? (issue 20)

The same-popularity AUC of bench/baskets_complements.py (`SamePopularity`: each top-lift partner of the scored
tenth against 20 products bought about as often in the training orders) for partitions, where a candidate scores
1 when it falls in the anchor's group and 0 otherwise (ties half): the tree's aisles and departments alone, and
one level of k-means (quantizer.core.residual_kmeans, --clusters groups, seed 0) on the text, on the co-purchase
embedding of the training orders alone, and on the two side by side at the application's weight; two nested levels
(--nested: a coarse one as the tree's departments, then a finer one on the residual) ranked by the levels shared;
beside the cosine of each embedding, which ranks every candidate. Residual k-means stands in for the RQ-VAE's level 1: a
quantizer's level is such a partition.

    OMP_NUM_THREADS=2 .venv/bin/python bench/studies/partition_ceiling.py [--clusters 21 134 256] [--scored validation]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import baskets_data as bd  # noqa: E402
import common  # noqa: E402
from baskets_complements import (  # noqa: E402
    Anchors,
    SamePopularity,
    cosine,
    group_ids,
    shared_levels,
    top_lift_anchors,
)

from baskets.core.copurchase import copurchase_embedding, orders_lift  # noqa: E402
from quantizer.core import residual_kmeans  # noqa: E402
from quantizer.core.inputs import side_by_side  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flavor", default="precision")
    parser.add_argument("--clusters", nargs="+", type=int, default=[21, 134, 256])
    parser.add_argument("--nested", nargs=2, type=int, default=[21, 7], metavar=("COARSE", "FINE"),
                        help="two levels of residual k-means ranked as a prefix (default: about the tree's "
                             "21 departments and 134 aisles)")
    parser.add_argument("--copurchase-weight", type=float, default=bd.COPURCHASE_WEIGHT)
    parser.add_argument("--scored", default="validation", choices=["validation", "test"])
    args = parser.parse_args()

    ds = common.load_dataset("instacart")
    train, scored = bd.split(bd.load_baskets(ds), scored=args.scored)
    _, bought = orders_lift(train, len(ds))
    lift, counted = orders_lift(scored, len(ds))
    _, anchors, partners = top_lift_anchors(ds, lift, counted, 20, 10)
    tree = group_ids(ds.taxonomy)
    same = SamePopularity(Anchors(anchors, partners, tree[:, 0]), bought)
    learned = copurchase_embedding(train, len(ds))
    text = common.embed_dataset(ds, args.flavor)
    inputs = {"text": text, "co-purchase": learned,
              f"text + co-purchase (weight {args.copurchase_weight:g})": side_by_side(text, learned,
                                                                                     args.copurchase_weight)}
    print(f"{args.scored} tenth, {int(same.keep.sum()):,} same-popularity partners, {args.flavor} text")
    print("| grouping | groups | same-popularity AUC |")
    print("|---|---|---|")
    for name, column in (("tree: department", 0), ("tree: aisle", 1)):
        auc = same.auc(shared_levels(tree[:, column:column + 1]))
        print(f"| {name} | {len(np.unique(tree[:, column]))} | {auc:.3f} |")
    print(f"| tree: aisle, then department | – | {same.auc(shared_levels(tree)):.3f} |", flush=True)
    for name, x in inputs.items():
        print(f"| {name}: cosine | – | {same.auc(cosine(x)):.3f} |", flush=True)
        for k in args.clusters:
            started = time.time()
            groups = residual_kmeans(x, (k,), seed=0, spread=False)
            print(f"| {name}: k-means | {k} | {same.auc(shared_levels(np.asarray(groups)[:, :1])):.3f} |"
                  f" <!-- {time.time() - started:.0f} s -->", flush=True)
        coarse, fine = args.nested
        nested = group_ids(np.asarray(residual_kmeans(x, (coarse, fine), seed=0, spread=False)))
        print(f"| {name}: residual k-means, {coarse} then {fine} nested (prefix) | {coarse} / {coarse * fine} | "
              f"{same.auc(shared_levels(nested)):.3f} |", flush=True)


if __name__ == "__main__":
    main()
