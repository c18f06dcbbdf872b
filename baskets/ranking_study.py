"""Where the "goes well with" order comes from: which ranking of a product's partners holds on new orders.

    .venv/bin/python -m baskets.ranking_study ../shared/data/instacart_baskets.csv [--seeds 0 1 2]
    .venv/bin/python -m baskets.ranking_study --demo [--seeds 0 1 2]

Reads a basket file directly (numpy, no Django, no database), or the demo's generated orders (`--demo`: the
demo catalog's 12,000 orders, whose true complements are known: products of leaves that share a shopping habit).
For each seed the orders are split by order, 80% to compute the pairs as an import does (support of
MIN_PAIR_SUPPORT orders and up, lift above 1) and 20% held out. Every product with a partner gets its panel, its
first PANEL_SIZE partners under each ranking, and the held-out orders judge the panels of the products with more
partners than that (the others list all of theirs under any ranking):

- held-out lift: over all the panels' pairs, the orders holding both in the held-out fifth against what chance
  gives there (sum of counts over sum of n_a n_b / N): how much more often than chance the listed products are
  bought together in orders the ranking never saw;
- bought again: the share of listed pairs bought together in at least one held-out order;
- beaten chance: the share of listed pairs whose held-out count is above chance's;
- confirmed: the share of listed pairs the held-out orders confirm on their own: a count that chance (a Poisson
  count of mean n_a n_b / N there) reaches with probability under CONFIRMED_P (0.05), the replication rate.

Rankings: the lift (what the panel did before), the orders together, and the lift's lower confidence bound at
one-sided confidence z: lift * (1 - 1 / (9 n) - z / (3 sqrt(n)))^3 for n orders together (Byar's approximation to
the exact Poisson bound of an observed over expected count, as for a standardized mortality ratio: the lift the
pair reaches at least), for z = 1, 1.645 (95%, the textbook value the application uses) and 2.326 (99%).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

from baskets.core.copurchase import MIN_PAIR_SUPPORT, lift_bound
from baskets.support_study import pair_counts, read_lines

PANEL_SIZE = 8
TRAIN_SHARE = 0.8
CONFIRMED_P = 0.05
RANKINGS = ("lift", "orders", "bound z=1", "bound z=1.645", "bound z=2.326")


def _score(name: str, lift: np.ndarray, orders: np.ndarray) -> np.ndarray:
    if name == "lift":
        return lift
    if name == "orders":
        return orders + lift * 1e-9  # ties by lift
    return lift_bound(lift, orders, z=float(name.split("=")[1]))


def panels(anchor: np.ndarray, partner: np.ndarray, score: np.ndarray, k: int = PANEL_SIZE) -> np.ndarray:
    """Indexes of each anchor's first `k` edges by score (ties: lower partner first)."""
    order = np.lexsort((partner, -score, anchor))
    sorted_anchor = anchor[order]
    starts = np.flatnonzero(np.r_[True, sorted_anchor[1:] != sorted_anchor[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return order[rank < k]


def _pairs(order_ids: np.ndarray, product_ids: np.ndarray, width: int):
    """(a, b, orders together) of every pair a < b, each product's orders (width,), and N orders."""
    keys, together, bought, total = pair_counts(order_ids, product_ids)
    a, b = keys // len(bought), keys % len(bought)
    return a, b, together, np.pad(bought, (0, width - len(bought))), total


def evaluate(order_ids: np.ndarray, product_ids: np.ndarray, seed: int, truth=None) -> dict[str, dict]:
    """Each ranking's panels, computed on 80% of the orders (split by order, `seed`), judged on the rest."""
    unique_orders = np.unique(order_ids)
    train_orders = np.random.default_rng(seed).permutation(unique_orders)[: round(TRAIN_SHARE * len(unique_orders))]
    in_train = np.isin(order_ids, train_orders)
    width = int(product_ids.max()) + 1
    a, b, n, bought, total = _pairs(order_ids[in_train], product_ids[in_train], width)
    lift = n * total / (bought[a].astype(float) * bought[b])
    keep = (n >= MIN_PAIR_SUPPORT) & (lift > 1)
    a, b, n, lift = a[keep], b[keep], n[keep], lift[keep]
    anchor, partner, orders, lifts = np.r_[a, b], np.r_[b, a], np.r_[n, n], np.r_[lift, lift]
    choosing = np.bincount(anchor, minlength=width) > PANEL_SIZE  # where a ranking chooses, not only orders
    edges = choosing[anchor]
    anchor, partner, orders, lifts = anchor[edges], partner[edges], orders[edges], lifts[edges]
    ta, tb, tn, test_bought, test_total = _pairs(order_ids[~in_train], product_ids[~in_train], width)
    test_keys = ta * width + tb  # sorted: pair_counts sorts its keys, and a * width + b keeps their order
    results = {}
    for name in RANKINGS:
        picked = panels(anchor, partner, _score(name, lifts, orders))
        x, y = anchor[picked], partner[picked]
        wanted = np.minimum(x, y) * width + np.maximum(x, y)
        at = np.minimum(np.searchsorted(test_keys, wanted), len(test_keys) - 1)
        together = np.where(test_keys[at] == wanted, tn[at], 0)
        expected = test_bought[x].astype(float) * test_bought[y] / test_total
        row = {
            "panels": int(len(np.unique(x))),
            "pairs": int(len(x)),
            "median orders together": float(np.median(orders[picked])),
            "held-out lift": float(together.sum() / expected.sum()),
            "bought again": float((together > 0).mean()),
            "beaten chance": float((together > expected).mean()),
            "confirmed": float((stats.poisson.sf(together - 1, expected) < CONFIRMED_P).mean()),
        }
        if truth is not None:
            row["true complements"] = float(truth(x, y).mean())
        results[name] = row
    return results


def demo_lines():
    """The demo's orders as (order ids, product ids), and a judge: are two products of one shopping habit?"""
    from catalog.demo import HABITS, generate_demo_catalog, generate_demo_orders

    catalog = generate_demo_catalog()
    lines = generate_demo_orders(catalog)
    external = sorted({row[1] for row in lines})
    index = {e: i for i, e in enumerate(external)}
    leaf = [catalog.true_paths[e] for e in external]
    habits_of = [frozenset(h for h, paths in HABITS.items() if path in paths) for path in leaf]

    def truth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.array([bool(habits_of[i] & habits_of[j]) for i, j in zip(x, y)])

    orders = np.array([row[0] for row in lines], dtype=np.int64)
    products = np.array([index[row[1]] for row in lines], dtype=np.int64)
    return orders, products, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, nargs="?")
    parser.add_argument("--demo", action="store_true", help="the demo's generated orders instead of a file")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if args.demo:
        orders, products, truth = demo_lines()
    elif args.path:
        (orders, products), truth = read_lines(args.path), None
    else:
        parser.error("a basket file or --demo")
    by_seed = {seed: evaluate(orders, products, seed, truth) for seed in args.seeds}
    columns = list(next(iter(by_seed.values()))["lift"])
    print(f"{len(np.unique(orders))} orders, seeds {args.seeds}: each cell seed by seed")
    print("| ranking | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name in RANKINGS:
        cells = []
        for column in columns:
            values = [by_seed[s][name][column] for s in args.seeds]
            cells.append(" / ".join(f"{v:,.0f}" if float(v).is_integer() and v > 1 else f"{v:.3f}" for v in values))
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
