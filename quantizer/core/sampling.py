"""Batches for the taxonomy contrastive term.

A hierarchical batch is built from parent categories: pick a random parent, take a few of its
child leaves and several products per leaf (so same-leaf and sibling pairs occur), and repeat
until `hierarchical_fraction` of the batch is filled. The rest is drawn uniformly from the
whole catalog (other categories, hard and easy negatives, and the uncategorized products,
which only ever enter through this random part).

Taxonomy arrays: (N, T) int64, column t = id of the product's depth-(t+1) category path
(unique per column), -1 where absent; a row of all -1 is an uncategorized product.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator

import numpy as np


def row_sample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of `limit` of `n` rows drawn without replacement, or of all of them when
    `limit` <= 0 or n <= limit (then `rng` is left untouched)."""
    if limit <= 0 or n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, limit, replace=False))


def leaf_depths(taxonomy: np.ndarray) -> np.ndarray:
    """(N,) depth of each product's leaf = number of leading non-negative columns (0 = none)."""
    present = taxonomy >= 0
    return np.cumprod(present, axis=1).sum(1)


def validate_taxonomy(taxonomy: np.ndarray, n: int) -> np.ndarray:
    tax = np.asarray(taxonomy)
    if tax.ndim == 1:
        tax = tax[:, None]
    if tax.ndim != 2 or tax.shape[0] != n:
        raise ValueError(f"taxonomy must be (N, T) with N={n}, got {tuple(np.shape(taxonomy))}")
    if not np.issubdtype(tax.dtype, np.integer):
        raise ValueError(f"taxonomy must hold integer ids, got dtype {tax.dtype}")
    return tax.astype(np.int64, copy=False)


class HierarchicalBatchSampler:
    """Deterministic given (seed, epoch). `batches(epoch)` -> list of (B,) index arrays."""

    def __init__(
        self,
        taxonomy: np.ndarray,
        batch_size: int,
        *,
        seed: int = 0,
        hierarchical_fraction: float = 0.5,
        leaves_per_parent: int = 4,
        products_per_leaf: int = 8,
    ):
        self.taxonomy = tax = validate_taxonomy(taxonomy, len(taxonomy))
        self.n = len(tax)
        self.batch_size = min(int(batch_size), self.n)
        self.seed = int(seed)
        self.hierarchical_fraction = float(hierarchical_fraction)
        self.leaves_per_parent = int(leaves_per_parent)
        self.products_per_leaf = int(products_per_leaf)

        depth = leaf_depths(tax)
        rows = np.arange(self.n)
        # Leaf node of each categorized product: (depth, id at that depth).
        leaf_members: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i in rows[depth > 0]:
            d = int(depth[i])
            leaf_members[(d, int(tax[i, d - 1]))].append(int(i))
        # Parent node of each leaf: (depth-1, id), or the root (0, -1) for depth-1 leaves.
        parent_leaves: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for (d, leaf_id), members in sorted(leaf_members.items()):
            i = members[0]
            parent = (d - 1, int(tax[i, d - 2])) if d >= 2 else (0, -1)
            parent_leaves[parent].append((d, leaf_id))
        self.leaf_members = {k: np.asarray(v, np.int64) for k, v in sorted(leaf_members.items())}
        self.parents = sorted(parent_leaves)  # stable order for determinism
        self.parent_leaves = {p: parent_leaves[p] for p in self.parents}
        self.categorized = rows[depth > 0]

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def _hierarchical_part(self, rng: np.random.Generator, size: int) -> list[int]:
        chosen: list[int] = []
        seen: set[int] = set()
        attempts = 0
        while len(chosen) < size and self.parents and attempts < 50 * (size + 1):
            attempts += 1
            parent = self.parents[rng.integers(len(self.parents))]
            leaves = self.parent_leaves[parent]
            take = min(self.leaves_per_parent, len(leaves))
            for li in rng.choice(len(leaves), size=take, replace=False):
                members = self.leaf_members[leaves[li]]
                m = min(self.products_per_leaf, len(members))
                for i in rng.choice(members, size=m, replace=False):
                    if int(i) not in seen and len(chosen) < size:
                        seen.add(int(i))
                        chosen.append(int(i))
        return chosen

    def batch(self, rng: np.random.Generator) -> np.ndarray:
        b = self.batch_size
        hier = self._hierarchical_part(rng, int(round(b * self.hierarchical_fraction)))
        taken = np.zeros(self.n, bool)
        taken[hier] = True
        # A permutation of all the other rows (O(N)) for b - len(hier) of them: ~1 ms at 100,000 rows.
        # Kept, since a cheaper draw would change every run's batches; training draws the next
        # epoch's batches while the GPU runs this one's steps (`iter_batches`).
        rest = rng.permutation(np.flatnonzero(~taken))[: b - len(hier)]
        return np.concatenate([np.asarray(hier, np.int64), rest.astype(np.int64)])

    def iter_batches(self, epoch: int) -> Iterator[np.ndarray]:
        """`batches(epoch)` one at a time, drawn as they are asked for."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        return (self.batch(rng) for _ in range(len(self)))

    def batches(self, epoch: int) -> list[np.ndarray]:
        return list(self.iter_batches(epoch))


class RandomBatchSampler:
    """Plain shuffled batches (used when the contrastive term is off)."""

    def __init__(self, n: int, batch_size: int, *, seed: int = 0):
        self.n, self.batch_size, self.seed = int(n), min(int(batch_size), int(n)), int(seed)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def iter_batches(self, epoch: int) -> Iterator[np.ndarray]:
        return iter(self.batches(epoch))

    def batches(self, epoch: int) -> list[np.ndarray]:
        perm = np.random.default_rng([self.seed, int(epoch)]).permutation(self.n)
        return [perm[i : i + self.batch_size] for i in range(0, self.n, self.batch_size)]
