"""How far can text reach the never-bought products a basket ends with (issue 20's cold-start goal)?

    .venv/bin/python bench/studies/cold_ceiling.py [--flavor precision] [--split-seed 0]

The next-item benchmark's split (bench/baskets_retrieval.py: orders 80/10/10 by order, leave-last-out in the
test tenth). A cold target was never bought in a training order; no ID model can name it, and TIGER names it
only through its text's code. The most text can do for one: rank it among the never-bought products (not the
whole catalog) by cosine to the basket's last product, or to the mean of its products. Prints how many cold
targets land in the first 1, 2, 5 and 10 places of that ranking, and the median place; beside them, the
content baseline's hits (the last product's nearest among all products, first 10).
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

from baskets.core.evaluation import leave_last_out, split_orders  # noqa: E402


def places(scores: np.ndarray, target: int, skip: np.ndarray) -> int:
    """The target's place (0 = first) in ``scores``, the rows ``skip`` left out."""
    scores = scores.copy()
    scores[skip] = -np.inf
    return int((scores > scores[target]).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flavor", default="precision")
    parser.add_argument("--split-seed", type=int, default=0)
    args = parser.parse_args()
    ds = common.load_dataset("instacart")
    x = common.embed_dataset(ds, args.flavor)
    baskets = bd.load_baskets(ds).orders()
    train_rows, _, test_rows = split_orders(len(baskets), args.split_seed)
    histories, target = leave_last_out([baskets[i] for i in test_rows])
    bought = np.bincount(np.concatenate([baskets[i] for i in train_rows]), minlength=len(ds))
    never = np.flatnonzero(bought == 0)
    where = np.full(len(ds), -1)
    where[never] = np.arange(len(never))
    cases = np.flatnonzero(bought[target] == 0)
    print(f"{len(cases)} cold targets of {len(target):,} test baskets; {len(never):,} products never bought "
          f"in the {len(train_rows):,} training orders; {args.flavor} text")
    print("| ranking | first 1 | first 2 | first 5 | first 10 | median place |")
    print("|---|---|---|---|---|---|")
    for name, query in (("never-bought products by cosine to the last product", lambda h: x[h[-1]]),
                        ("never-bought products by cosine to the basket's mean", lambda h: x[h].mean(0))):
        found = np.array([places(x[never] @ query(histories[i]), where[target[i]],
                                 where[np.intersect1d(histories[i], never)]) for i in cases])
        cells = " | ".join(str(int((found < k).sum())) for k in (1, 2, 5, 10))
        print(f"| {name} | {cells} | {np.median(found):,.0f} of {len(never):,} |")
    content = np.array([places(x @ x[histories[i][-1]], target[i], histories[i]) for i in cases])
    print(f"| content baseline: all products by cosine to the last product | {int((content < 1).sum())} | "
          f"{int((content < 2).sum())} | {int((content < 5).sum())} | {int((content < 10).sum())} | "
          f"{np.median(content):,.0f} of {len(ds):,} |")


if __name__ == "__main__":
    main()
