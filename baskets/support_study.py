"""Where MIN_PAIR_SUPPORT comes from: how many pairs reach a high lift by chance alone, by support.

    .venv/bin/python -m baskets.support_study ../shared/data/instacart_baskets.csv [--lift 10] [--seed 0]

Reads a basket file directly (numpy, no Django, no database) and counts, for each minimum support s
(orders a pair shares), the pairs of support >= s and lift >= --lift in the real orders and in a shuffled
copy: every line's product drawn again by a permutation of all lines' products, so order sizes and
product popularity stay and any co-purchase left is chance (a product drawn twice into one order is kept
once). The smallest s where the shuffled copy has under 1% as many such pairs as the real orders is the
support below which the high lifts at the top of a "goes well with" list are mostly chance.

Lift's baseline P(a) P(b) ignores order sizes: products meet in large orders more than it expects, so
the shuffled copy has many pairs of lift 2 or 3 at every support; its high lifts (10 and up) are rare,
and that is where a minimum support makes the difference.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

CHANCE_SHARE = 0.01  # "lift is not chance": the shuffled copy holds under 1% as many pairs as the real data


def pair_counts(order_ids: np.ndarray, product_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pairs (a < b) of products sharing orders, their number of orders, and each product's, and N orders.
    Returns (pair keys a * P + b, pair counts, product counts (P,), N)."""
    lines = np.unique(np.stack([order_ids, product_ids], axis=1), axis=0)  # (M, 2) sorted by order, product
    orders, products = lines[:, 0], lines[:, 1]
    n_products = int(products.max()) + 1
    starts = np.flatnonzero(np.r_[True, orders[1:] != orders[:-1]])
    sizes = np.diff(np.r_[starts, len(orders)])
    keys = []
    for size in np.unique(sizes):
        if size < 2:
            continue
        first = starts[sizes == size]  # (G,) orders of this size
        i, j = np.triu_indices(size, k=1)  # (size*(size-1)/2,) positions of each pair
        a, b = products[first[:, None] + i], products[first[:, None] + j]  # (G, pairs), a < b: lines are sorted
        keys.append((a * n_products + b).ravel())
    pair_keys, pair_n = np.unique(np.concatenate(keys), return_counts=True)
    return pair_keys, pair_n, np.bincount(products, minlength=n_products), len(starts)


def high_lift_by_support(order_ids, product_ids, *, lift: float, max_support: int) -> list[int]:
    """[pairs of lift >= `lift` and support >= s for s = 1..max_support]."""
    keys, n, bought, total = pair_counts(order_ids, product_ids)
    a, b = keys // len(bought), keys % len(bought)
    lifts = n * total / (bought[a].astype(float) * bought[b])
    return [int(((n >= s) & (lifts >= lift)).sum()) for s in range(1, max_support + 1)]


def read_lines(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        at_order, at_product = header.index("order_id"), header.index("external_id")
        orders, external = zip(*((int(row[at_order]), row[at_product]) for row in reader))
    _, product_ids = np.unique(np.array(external), return_inverse=True)
    return np.array(orders, dtype=np.int64), product_ids.astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--lift", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-support", type=int, default=8)
    args = parser.parse_args()
    orders, products = read_lines(args.path)
    real = high_lift_by_support(orders, products, lift=args.lift, max_support=args.max_support)
    shuffled_products = np.random.default_rng(args.seed).permutation(products)
    chance = high_lift_by_support(orders, shuffled_products, lift=args.lift, max_support=args.max_support)
    print(f"pairs of lift >= {args.lift:g} and support >= s (orders shared), real vs shuffled (seed {args.seed})")
    print("      s  real     shuffled  shuffled/real")
    for s, (r, c) in enumerate(zip(real, chance), start=1):
        print(f"{s:>7}  {r:>7}  {c:>8}  {c / r if r else float('nan'):.4f}")
    smallest = next((s for s, (r, c) in enumerate(zip(real, chance), start=1) if r and c < CHANCE_SHARE * r), None)
    print(f"smallest support with shuffled < {CHANCE_SHARE:.0%} of real: {smallest}")


if __name__ == "__main__":
    main()
