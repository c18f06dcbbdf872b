"""Where a "goes well with" panel's order and filter come from: which of a product's partners hold on new orders.

    .venv/bin/python -m baskets.ranking_study ../shared/data/instacart_baskets.csv [--seeds 0 1 2]
    .venv/bin/python -m baskets.ranking_study --demo [--seeds 0 1 2]

Reads a basket file directly (numpy, no Django, no database), or the demo's generated orders (`--demo`: the
demo catalog's 12,000 orders, whose true complements are known: products of leaves that share a shopping habit).
For each seed the orders are split by order, 80% to compute the pairs as an import does (support of
MIN_PAIR_SUPPORT orders and up, lift above 1) and 20% held out. A product's panel is its first PANEL_SIZE partners;
the held-out orders judge the listed pairs against chance with the held-out orders' sizes kept (`chance_lift`
times n_a n_b / N: lift's own baseline n_a n_b / N takes every order for one size):

- held-out lift over chance: over all the listed pairs, the orders holding both in the held-out fifth over what
  chance gives there: how much more often than chance the listed products are bought together in orders the
  panels never saw;
- beaten chance: the share of listed pairs whose held-out count is above chance's;
- confirmed: the share of listed pairs the held-out orders confirm on their own: a count that chance (a Poisson
  count of that mean) reaches with probability under CONFIRMED_P (0.05), the replication rate.

Two tables. **The order**, for the products with more partners than a panel shows (the others list all of theirs
under any order): the lift (the panel's order before), the orders together, and the lift's lower confidence
bound (`lift_bound`, Byar's approximation to the exact Poisson bound) at one-sided z = 1, 1.645 (95%, the textbook
value the application uses) and 2.326 (99%). **The filter**, every product's panel ordered by the bound: all pairs
of lift above 1 (the panel before), those whose bound is above 1, those whose bound is above the training orders'
chance lift (the application's `above_chance` over 1), and what that last filter leaves out of the first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

from baskets.core.copurchase import MIN_PAIR_SUPPORT, chance_lift, lift_bound
from baskets.support_study import pair_counts, read_lines

PANEL_SIZE = 8
TRAIN_SHARE = 0.8
CONFIRMED_P = 0.05
COUNTS = ("panels", "pairs", "median orders together")
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


FILTERS = ("lift > 1", "lift bound > 1", "lift bound > chance")


def evaluate(order_ids: np.ndarray, product_ids: np.ndarray, seed: int, truth=None) -> dict[str, dict]:
    """Each ranking's and each filter's panels, computed on 80% of the orders (split by order, `seed`), judged
    on the rest against chance with its order sizes kept."""
    unique_orders = np.unique(order_ids)
    train_orders = np.random.default_rng(seed).permutation(unique_orders)[: round(TRAIN_SHARE * len(unique_orders))]
    in_train = np.isin(order_ids, train_orders)
    width = int(product_ids.max()) + 1
    a, b, n, bought, total = _pairs(order_ids[in_train], product_ids[in_train], width)
    lift = n * total / (bought[a].astype(float) * bought[b])
    chance = chance_lift(np.unique(order_ids[in_train], return_counts=True)[1])
    keep = (n >= MIN_PAIR_SUPPORT) & (lift > 1)
    a, b, n, lift = a[keep], b[keep], n[keep], lift[keep]
    anchor, partner, orders, lifts = np.r_[a, b], np.r_[b, a], np.r_[n, n], np.r_[lift, lift]
    ta, tb, tn, test_bought, test_total = _pairs(order_ids[~in_train], product_ids[~in_train], width)
    test_keys = ta * width + tb  # sorted: pair_counts sorts its keys, and a * width + b keeps their order
    test_chance = chance_lift(np.unique(order_ids[~in_train], return_counts=True)[1])

    def judge(picked: np.ndarray) -> dict:
        x, y = anchor[picked], partner[picked]
        wanted = np.minimum(x, y) * width + np.maximum(x, y)
        at = np.minimum(np.searchsorted(test_keys, wanted), len(test_keys) - 1)
        together = np.where(test_keys[at] == wanted, tn[at], 0)
        expected = test_chance * test_bought[x].astype(float) * test_bought[y] / test_total
        row = {
            "panels": int(len(np.unique(x))),
            "pairs": int(len(x)),
            "median orders together": float(np.median(orders[picked])) if len(x) else 0.0,
            "held-out lift over chance": float(together.sum() / expected.sum()) if len(x) else 0.0,
            "beaten chance": float((together > expected).mean()) if len(x) else 0.0,
            "confirmed": float((stats.poisson.sf(together - 1, expected) < CONFIRMED_P).mean()) if len(x) else 0.0,
        }
        if truth is not None:
            row["true complements"] = float(truth(x, y).mean()) if len(x) else 0.0
        return row

    choosing = (np.bincount(anchor, minlength=width) > PANEL_SIZE)[anchor]  # a ranking chooses, not only orders
    results = {"order": {}, "filter": {}, "chance lift": chance}
    for name in RANKINGS:
        shown = panels(anchor, partner, _score(name, lifts, orders))
        results["order"][name] = judge(shown[choosing[shown]])
    bound = lift_bound(lifts, orders)
    for name, passes in zip(FILTERS, (lifts > 1, bound > 1, bound > chance)):
        shown = panels(anchor, partner, np.where(passes, bound, -np.inf))
        results["filter"][name] = judge(shown[passes[shown]])
    shown = panels(anchor, partner, bound)  # what "lift > 1" lists, of it what the last filter leaves out
    results["filter"]["left out by the last"] = judge(shown[bound[shown] <= chance])
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
    chance = " / ".join(f"{by_seed[s]['chance lift']:.3f}" for s in args.seeds)
    print(f"{len(np.unique(orders))} orders, seeds {args.seeds}: each cell seed by seed; chance lift with order sizes "
          f"kept (training orders): {chance}")
    for part, title in (("order", "the order: products with more than 8 partners, lift > 1"),
                        ("filter", "the filter: every product's panel, the order by the lift's bound")):
        print(f"\n{title}")
        names = list(by_seed[args.seeds[0]][part])
        columns = list(by_seed[args.seeds[0]][part][names[0]])
        print("| | " + " | ".join(columns) + " |")
        print("|---" * (len(columns) + 1) + "|")
        for name in names:
            cells = []
            for column in columns:
                values = [by_seed[s][part][name][column] for s in args.seeds]
                cells.append(" / ".join(f"{v:,.1f}".removesuffix(".0") if column in COUNTS else f"{v:.3f}"
                                        for v in values))
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
