"""How far can text reach the never-bought products a basket ends with (issue 20's cold-start goal)?

    .venv/bin/python bench/studies/cold_ceiling.py [--flavor precision] [--split-seeds 0] [--hold-out SHARE]
        [--tenths test]

The next-item benchmark's split (bench/baskets_retrieval.py: orders 80/10/10 by order, leave-last-out; with
--hold-out 0.05 also its split by product, that share of the bought products left out of the training orders).
A cold target was never bought in a training order; no ID model can name it, and TIGER names it only through
its text's code. The most text can do for one: rank it among the never-bought products (not the whole catalog)
by cosine to the basket's last product, or to the mean of its products; the never-bought products of the last
product's aisle (category leaf) by cosine to it (the benchmark's tiger_cold_aisle rule); and, as a ceiling for any
rule that guesses the aisle, those of the target's own aisle. Prints, per split seed and tenth, how many cold
targets land in the first 1, 2, 5 and 10 places of each ranking and the median place; beside them, the content
baseline's hits (the last product's nearest among all products, first 10), and how often the last product's
aisle is the target's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: common.py, baskets_data.py
import baskets_data as bd  # noqa: E402
import common  # noqa: E402
from baskets_retrieval import held_out_products  # noqa: E402

from baskets.core.evaluation import leave_last_out, split_orders  # noqa: E402

FAR = 10.0  # added to a cosine: every product of the wanted aisle before every other


def places(scores: np.ndarray, target: int, skip: np.ndarray) -> int:
    """The target's place (0 = first) in ``scores``, the rows ``skip`` left out."""
    scores = scores.copy()
    scores[skip] = -np.inf
    return int((scores > scores[target]).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flavor", default="precision")
    parser.add_argument("--split-seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--hold-out", type=float, default=0.0, metavar="SHARE")
    parser.add_argument("--tenths", nargs="+", default=["test"], choices=["validation", "test"])
    args = parser.parse_args()
    ds = common.load_dataset("instacart")
    x = common.embed_dataset(ds, args.flavor)
    aisle = ds.leaf
    baskets = bd.load_baskets(ds).orders()
    for split_seed in args.split_seeds:
        train_rows, val_rows, test_rows = split_orders(len(baskets), split_seed)
        held = held_out_products(baskets, len(ds), args.hold_out, split_seed)
        train = [b[~held[b]] for b in (baskets[i] for i in train_rows)]
        bought = np.bincount(np.concatenate(train), minlength=len(ds))
        never = np.flatnonzero(bought == 0)
        where = np.full(len(ds), -1)
        where[never] = np.arange(len(never))
        xn = x[never]
        rankings = (
            ("never-bought products by cosine to the last product", lambda h, t: xn @ x[h[-1]]),
            ("never-bought products by cosine to the basket's mean", lambda h, t: xn @ x[h].mean(0)),
            ("never-bought products of the last product's aisle by cosine to it",
             lambda h, t: np.where(aisle[never] == aisle[h[-1]], FAR, 0) + xn @ x[h[-1]]),
            ("ceiling: never-bought products of the target's own aisle by cosine to the last product",
             lambda h, t: np.where(aisle[never] == aisle[t], FAR, 0) + xn @ x[h[-1]]),
        )
        for tenth, rows in (("validation", val_rows), ("test", test_rows)):
            if tenth not in args.tenths:
                continue
            histories, target = leave_last_out([baskets[i] for i in rows])
            cases = np.flatnonzero(bought[target] == 0)
            same = np.mean([aisle[histories[i][-1]] == aisle[target[i]] for i in cases])
            print(f"\nsplit seed {split_seed}, {tenth} tenth: {len(cases)} cold targets of {len(target):,} baskets; "
                  f"{len(never):,} products never bought in the training orders (hold-out {args.hold_out:g}); "
                  f"the last product's aisle is the target's in {same:.1%}; {args.flavor} text")
            print("| ranking | first 1 | first 2 | first 5 | first 10 | median place |")
            print("|---|---|---|---|---|---|")
            for name, score in rankings:
                found = np.array([places(score(histories[i], target[i]), where[target[i]],
                                         where[np.intersect1d(histories[i], never)]) for i in cases])
                cells = " | ".join(str(int((found < k).sum())) for k in (1, 2, 5, 10))
                print(f"| {name} | {cells} | {np.median(found):,.0f} of {len(never):,} |")
            content = np.array([places(x @ x[histories[i][-1]], target[i], histories[i]) for i in cases])
            print(f"| content baseline: all products by cosine to the last product | {int((content < 1).sum())} | "
                  f"{int((content < 2).sum())} | {int((content < 5).sum())} | {int((content < 10).sum())} | "
                  f"{np.median(content):,.0f} of {len(ds):,} |")


if __name__ == "__main__":
    main()
