"""Co-purchase counts and lift from arrays of basket lines (numpy/scipy, no Django).

The application stores the same figures in the database (baskets.services.COPURCHASE_SQL); this is the
in-memory version the benchmarks use, with the same minimum support and the same lift.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

# The smallest number of orders a pair must share to be stored (and shown). Measured on
# instacart_baskets.csv against a shuffled copy (same order sizes, same product popularity: co-purchase by
# chance alone; baskets.support_study): among pairs of lift >= 10, the top of a "goes well with" list, the
# copy holds 8% as many as the real orders from 4 shared orders on, 2.4% from 5, 0.8% from 6 (103 of
# 12,894; 100 with another seed). 6 is the smallest support where chance makes under 1% of them.
MIN_PAIR_SUPPORT = 6
# "Goes well with" lists a product's partners most surely above chance first: by the lift's one-sided lower
# confidence bound at this z (95%, the textbook value; not tuned), not by the lift itself, which puts pairs of six
# orders first (Banana: yogurts and a laundry detergent). Held out on the instacart orders (baskets.ranking_study,
# the products with more partners than a panel shows, 3 splits): the listed pairs that new orders confirm on their
# own 0.322-0.325 -> 0.350-0.355, those bought together more often than chance there 0.656-0.663 -> 0.682-0.690,
# at a pooled held-out lift over chance of 3.7-3.8 against 4.0-4.2 (docs/baskets.md, "The order and the filter of
# a panel").
LIFT_BOUND_Z = 1.645
# Width of the co-purchase embedding: the RQ-VAE's latent width (quantizer ModelConfig.latent_dim); not tuned.
COPURCHASE_DIM = 64
# The co-purchase half's weight beside the text in a run that reads it (quantizer.core.inputs.side_by_side): the
# halves weighed alike, not tuned. Weight 2 reached more complements at equal candidate-set sizes on the validation
# tenth of the instacart orders, but only through a level-1 code of the most bought products: at equal popularity
# (the same-popularity AUC) 1, 2 and 3 are level, and the next-item model over weight-2 codes fell behind
# co-occurrence where weight 1 is ahead of it (docs/baskets.md, "Weighing the baskets").
COPURCHASE_WEIGHT = 1.0


def lift_bound(lift, orders, z: float = LIFT_BOUND_Z):
    """The lift a pair reaches at least, at one-sided confidence `z`, from the `orders` it was seen in: Byar's
    approximation to the exact Poisson bound of an observed over expected count (as for a standardized
    mortality ratio), lift * (1 - 1 / (9 n) - z / (3 sqrt(n)))^3. Positive for any n >= 1 while z < 2.66.
    Numbers or numpy arrays; `lift_bound_sql` is the same formula in SQL."""
    orders = np.asarray(orders, dtype=float)
    return lift * (1 - 1 / (9 * orders) - z / (3 * np.sqrt(orders))) ** 3


def lift_bound_sql(lift: str, orders: str, z: float = LIFT_BOUND_Z) -> str:
    """`lift_bound` as a PostgreSQL expression over the SQL expressions `lift` and `orders`."""
    n = f"({orders})::float8"
    return f"(({lift}) * power(1 - 1 / (9 * {n}) - {z!r} / (3 * sqrt({n})), 3))"


# "Goes well with" lists only pairs above chance with the orders' sizes kept: lift's own baseline n_a n_b / N takes
# every order for one size, but two products meet in large orders more often, so products bought independently
# have a lift of `chance_lift` (1.47 on the instacart orders), not 1. Of the pairs "lift above 1" listed, those
# whose lift_bound is not above it were at chance on held-out orders (lift over chance 1.06-1.07, confirmed as often
# as chance confirms: 3.2-3.6%; baskets.ranking_study).
def chance_lift(order_sizes) -> float:
    """The lift two products bought independently reach on average once order sizes are kept (the line shuffle of
    baskets.support_study): N sum s(s - 1) / (L (L - 1)) over the N orders' sizes s, L lines in all. `CHANCE_LIFT_SQL`
    is the same over a column `lines` (an order's size) of one row an order."""
    sizes = np.asarray(order_sizes, dtype=float)
    lines = sizes.sum()
    return float(len(sizes) * (sizes * (sizes - 1)).sum() / (lines * (lines - 1))) if lines > 1 else 0.0


CHANCE_LIFT_SQL = "count(*) * sum(lines * (lines - 1)) / NULLIF(sum(lines) * (sum(lines) - 1), 0)"


def above_chance_matrix(lift: sparse.csr_matrix, bought: np.ndarray, order_sizes) -> sparse.csr_matrix:
    """`lift_matrix`'s pairs with `CoPurchase.above_chance` instead of the lift: lift_bound over `chance_lift` of
    the orders' sizes (the counts from lift, n_a and n_b; N = the orders `order_sizes` lists)."""
    coo = lift.tocoo()
    together = coo.data * bought[coo.row].astype(float) * bought[coo.col] / len(order_sizes)
    above = lift_bound(coo.data, np.rint(together)) / chance_lift(order_sizes)
    return sparse.csr_matrix((above, (coo.row, coo.col)), shape=lift.shape)


def order_matrix(order_ids: np.ndarray, product_ids: np.ndarray, n_products: int) -> sparse.csr_matrix:
    """(orders, n_products) 0/1 matrix: row = one order (in order of first appearance of its id)."""
    _, rows = np.unique(order_ids, return_inverse=True)
    m = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, product_ids)),
                          shape=(int(rows.max()) + 1 if len(rows) else 0, n_products))
    m.data[:] = 1.0  # a product twice in an order counts once
    return m


def lift_matrix(orders: sparse.csr_matrix, min_support: int = MIN_PAIR_SUPPORT) -> tuple[sparse.csr_matrix,
                                                                                       np.ndarray]:
    """Lift of every pair of products sharing at least ``min_support`` orders, as a symmetric sparse
    matrix with an empty diagonal, and each product's number of orders.

    lift = together · N / (n_a · n_b), N = orders (the application's definition)."""
    counts = (orders.T @ orders).tocsr()  # (P, P) orders together; diagonal = orders holding the product
    bought = counts.diagonal().astype(np.float64)
    counts.setdiag(0)
    counts.eliminate_zeros()
    counts.data[counts.data < min_support] = 0
    counts.eliminate_zeros()
    coo = counts.tocoo()
    lift = coo.data * orders.shape[0] / (bought[coo.row] * bought[coo.col])
    out = sparse.csr_matrix((lift, (coo.row, coo.col)), shape=counts.shape)
    return out, bought


def top_partners(lift: sparse.csr_matrix, anchors: np.ndarray, k: int) -> list[np.ndarray]:
    """For each anchor, up to ``k`` partners of the highest lift above 1 (ties: lower index first)."""
    out = []
    for a in anchors:
        start, end = lift.indptr[a], lift.indptr[a + 1]
        cols, vals = lift.indices[start:end], lift.data[start:end]
        keep = vals > 1.0
        cols, vals = cols[keep], vals[keep]
        order = np.lexsort((cols, -vals))[:k]
        out.append(cols[order])
    return out


def orders_lift(orders: list[np.ndarray], n_products: int,
                min_support: int = MIN_PAIR_SUPPORT) -> tuple[sparse.csr_matrix, np.ndarray]:
    """`lift_matrix` of `orders` (each an array of product rows)."""
    return lift_matrix(_orders_matrix(orders, n_products), min_support)


def _orders_matrix(orders: list[np.ndarray], n_products: int) -> sparse.csr_matrix:
    order_ids = np.repeat(np.arange(len(orders)), [len(o) for o in orders])
    products = np.concatenate(orders) if orders else np.zeros(0, np.int64)
    return order_matrix(order_ids, products, n_products)


def copurchase_embedding(orders: list[np.ndarray], n_products: int, dim: int = COPURCHASE_DIM) -> np.ndarray:
    """(n_products, dim) float32 unit rows: where each product sits among the baskets, zero for a product
    never bought with another. The truncated SVD of the positive PMI of products bought in one order
    (PMI_ab = log(together_ab · T / (c_a · c_b)), c_a = the pairs a is in, T = all pairs; kept where > 0, every
    pair, however few its orders), rows U·sqrt(S) (Levy & Goldberg's symmetric factorisation), from `orders`
    (each an array of product rows). Products bought together far more often than chance get close rows,
    across departments. Deterministic (ARPACK from a fixed start)."""
    from scipy.sparse.linalg import svds

    m = _orders_matrix(orders, n_products)
    together = (m.T @ m).tocsr().astype(np.float64)
    together.setdiag(0)
    together.eliminate_zeros()
    counts = np.asarray(together.sum(1)).ravel()
    coo = together.tocoo()
    pmi = np.log(coo.data * counts.sum() / (counts[coo.row] * counts[coo.col])) if coo.nnz else coo.data
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=together.shape)
    out = np.zeros((n_products, dim), np.float32)
    rank = min(dim, n_products - 2, ppmi.nnz)
    if rank < 1:
        return out
    u, s, _ = svds(ppmi, k=rank, v0=np.ones(n_products) / np.sqrt(n_products))
    rows = u * np.sqrt(s)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out[:, :rank] = np.where(norms > 1e-9, rows / np.maximum(norms, 1e-9), 0.0)
    return out
