"""Splitting orders and scoring next-item lists (numpy, no Django): shared by the application's held-out
figures (baskets.services.train_next_item_model) and bench/baskets_retrieval.py."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def split_orders(n: int, seed: int, shares: tuple[float, float] = (0.8, 0.1)) -> tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]:
    """Indices of n orders drawn at random (seeded) into train / validation / test (80/10/10 by default)."""
    order = np.random.default_rng(seed).permutation(n)
    a, b = int(shares[0] * n), int((shares[0] + shares[1]) * n)
    return np.sort(order[:a]), np.sort(order[a:b]), np.sort(order[b:])


def leave_last_out(baskets: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Baskets of two products or more -> (the products before the last, in cart order; the last)."""
    cases = [np.asarray(b) for b in baskets if len(b) >= 2]
    return [b[:-1] for b in cases], np.array([b[-1] for b in cases], dtype=np.int64)


def hit_metrics(recs: np.ndarray, target: np.ndarray, warm: np.ndarray, ks: tuple[int, ...] = (5, 10)) -> dict:
    """Recall@k (the target among the first k) and NDCG@k (1 / log2(rank + 2) when it is), averaged over
    the warm targets, the cold ones and all; None for a group without cases."""
    hit = recs == target[:, None]
    rank = np.where(hit.any(1), hit.argmax(1), recs.shape[1] + 1)
    out = {}
    for name, rows in (("warm", warm), ("cold", ~warm), ("all", np.ones(len(warm), bool))):
        r = rank[rows]
        for k in ks:
            out[f"{name}_recall@{k}"] = float((r < k).mean()) if len(r) else None
            out[f"{name}_ndcg@{k}"] = float(np.where(r < k, 1 / np.log2(r + 2), 0).mean()) if len(r) else None
        out[f"{name}_cases"] = int(rows.sum())
    return out
