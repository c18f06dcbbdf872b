"""The co-purchase embedding (baskets.core.copurchase, no database): products bought together far more often
than chance get close rows, across departments; a product never bought with another gets none."""

import numpy as np

from baskets.core.copurchase import copurchase_embedding


def shopping(seed: int = 0) -> list[np.ndarray]:
    """Products 0-5 are bought as two habits: {0, 1, 2} (cheese, olives, tapenade: three departments) and
    {3, 4, 5}; each order takes two or three of one habit and, one order in three, product 6 (bought
    with everything). Product 7 is bought alone; product 8 never."""
    rng = np.random.default_rng(seed)
    orders = []
    for _ in range(300):
        habit = np.array([0, 1, 2]) if rng.random() < 0.5 else np.array([3, 4, 5])
        order = rng.choice(habit, rng.integers(2, 4), replace=False)
        orders.append(np.r_[order, 6] if rng.random() < 1 / 3 else order)
    return orders + [np.array([7])] * 5


def test_products_bought_together_get_close_rows_and_the_unbought_none():
    emb = copurchase_embedding(shopping(), 9, dim=2)  # two habits: two dimensions
    assert emb.shape == (9, 2) and emb.dtype == np.float32
    norms = np.linalg.norm(emb, axis=1)
    assert np.allclose(norms[:7], 1.0, atol=1e-5) and np.allclose(norms[7:], 0.0)
    cos = emb @ emb.T
    within = [cos[a, b] for habit in ((0, 1, 2), (3, 4, 5)) for a in habit for b in habit if a < b]
    across = [cos[a, b] for a in (0, 1, 2) for b in (3, 4, 5)]
    assert min(within) > max(across) + 0.5, (within, across)


def test_the_embedding_is_deterministic_and_small_catalogs_fit():
    orders = shopping(1)
    assert np.array_equal(copurchase_embedding(orders, 9, dim=4), copurchase_embedding(orders, 9, dim=4))
    # Wider than the catalog allows: the extra columns stay zero; no order at all: every row zero.
    wide = copurchase_embedding(orders, 9, dim=16)
    assert wide.shape == (9, 16) and not wide[:, 7:].any()
    assert not copurchase_embedding([], 5).any()
