"""Known wrong labels, injected on purpose: the ground truth of the audit benchmark and of calibration.

A label is a taxonomy row: column t holds the id of the product's depth-(t+1) path prefix, -1 where
absent (see ``quantizer.core``). A "leaf" is one distinct labelled row. Injection moves a product's
whole row to another leaf's row, so noisy labels stay consistent multi-level paths.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

REGIMES = ("uniform", "sibling", "lookalike", "brand")
CENTROID_ROWS = 65536  # products summed into the leaf centroids at a time (a float64 copy of 192 MiB at 384-d)


def leaf_classes(taxonomy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct labelled rows of ``taxonomy`` and each product's index into them.

    Returns ``(leaf_paths (K, T) int64, labels (N,) int64)``; unlabeled products (row all -1) get -1.
    """
    taxonomy = np.asarray(taxonomy, dtype=np.int64)
    labelled = (taxonomy >= 0).any(axis=1)
    labels = np.full(len(taxonomy), -1, dtype=np.int64)
    if not labelled.any():
        return np.zeros((0, taxonomy.shape[1]), dtype=np.int64), labels
    rows = taxonomy[labelled]
    inverse = prefix_ranks(rows)[-1]
    labels[labelled] = inverse
    return rows[np.unique(inverse, return_index=True)[1]], labels


def prefix_ranks(rows: np.ndarray) -> list[np.ndarray]:
    """Integer rows (R, C) -> C arrays (R,): the id of each row's prefix of 1, 2, ..., C columns, in the
    prefixes' lexicographic order (``np.unique(rows[:, :d], axis=0, return_inverse=True)`` for every d), a
    column at a time: the prefix of d columns is its parent's id and its own value, one int64."""
    rows = np.asarray(rows, dtype=np.int64)
    ranks, rank = [], np.zeros(len(rows), dtype=np.int64)
    for column in rows.T:
        column = column - column.min(initial=0)
        rank = np.unique(rank * (int(column.max(initial=0)) + 1) + column, return_inverse=True)[1].reshape(-1)
        ranks.append(rank)
    return ranks


def parent_groups(leaf_paths: np.ndarray) -> np.ndarray:
    """(K,) id of each leaf's parent path (the row without its deepest present level)."""
    parents = leaf_paths.copy()
    for k, row in enumerate(parents):
        present = np.flatnonzero(row >= 0)
        if len(present):
            row[present[-1]] = -1
    _, parent_of = np.unique(parents, axis=0, return_inverse=True)
    return parent_of.reshape(-1)


def leaf_centroid_neighbours(embeddings: np.ndarray, labels: np.ndarray, n_leaves: int) -> np.ndarray:
    """(K,) the other leaf whose mean embedding is nearest by cosine (-1 where a leaf is empty)."""
    centroids = np.zeros((n_leaves, embeddings.shape[1]), dtype=np.float64)
    keep = np.flatnonzero(labels >= 0)
    for start in range(0, len(keep), CENTROID_ROWS):  # sums by label, a slice of products at a time
        part = keep[start:start + CENTROID_ROWS]
        by_label = csr_matrix((np.ones(len(part)), (labels[part], np.arange(len(part)))), shape=(n_leaves, len(part)))
        centroids += by_label @ np.asarray(embeddings[part], dtype=np.float64)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    empty = norms[:, 0] == 0
    centroids /= np.where(norms == 0, 1.0, norms)
    sims = centroids @ centroids.T
    np.fill_diagonal(sims, -np.inf)
    sims[:, empty] = -np.inf
    nearest = sims.argmax(axis=1)
    nearest[empty] = -1
    return nearest


def inject_noise(
    taxonomy: np.ndarray,
    regime: str,
    rate: float = 0.03,
    seed: int = 0,
    embeddings: np.ndarray | None = None,
    brands=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Move ``rate`` of the labelled products to a wrong leaf.

    Regimes: ``uniform`` (a random other leaf), ``sibling`` (another leaf under the same parent;
    products whose leaf has no sibling are never picked), ``lookalike`` (the other leaf with the
    nearest embedding centroid; needs ``embeddings``), ``brand`` (whole brands moved together to
    one other leaf, brands drawn until about ``rate`` of products moved; needs ``brands``).

    Returns ``(noisy_taxonomy (N, T) int64, injected (N,) bool)``.
    """
    if regime not in REGIMES:
        raise ValueError(f'unknown noise regime "{regime}": choose one of {", ".join(REGIMES)}')
    taxonomy = np.asarray(taxonomy, dtype=np.int64)
    rng = np.random.default_rng(seed)
    leaf_paths, labels = leaf_classes(taxonomy)
    n_leaves = len(leaf_paths)
    labelled = np.flatnonzero(labels >= 0)
    target = int(round(rate * len(labelled)))
    new_label = labels.copy()
    injected = np.zeros(len(taxonomy), dtype=bool)
    if n_leaves < 2 or target == 0:
        return taxonomy.copy(), injected

    if regime == "uniform":
        chosen = rng.choice(labelled, size=target, replace=False)
        shift = rng.integers(1, n_leaves, size=target)  # never 0: always another leaf
        new_label[chosen] = (labels[chosen] + shift) % n_leaves
        injected[chosen] = True
    elif regime == "sibling":
        parent_of = parent_groups(leaf_paths)
        siblings = [np.flatnonzero((parent_of == parent_of[k]) & (np.arange(n_leaves) != k)) for k in range(n_leaves)]
        eligible = labelled[np.array([len(siblings[labels[i]]) > 0 for i in labelled], dtype=bool)]
        chosen = rng.choice(eligible, size=min(target, len(eligible)), replace=False)
        for i in chosen:
            new_label[i] = rng.choice(siblings[labels[i]])
        injected[chosen] = True
    elif regime == "lookalike":
        if embeddings is None:
            raise ValueError('noise regime "lookalike" needs embeddings')
        nearest = leaf_centroid_neighbours(np.asarray(embeddings, dtype=np.float64), labels, n_leaves)
        chosen = rng.choice(labelled, size=target, replace=False)
        new_label[chosen] = nearest[labels[chosen]]
        injected[chosen] = True
    else:  # brand
        if brands is None:
            raise ValueError('noise regime "brand" needs brands')
        brands = np.asarray([("" if b is None else str(b).strip().lower()) for b in brands], dtype=object)
        by_brand: dict[str, list[int]] = {}
        for i in labelled:
            if brands[i]:
                by_brand.setdefault(brands[i], []).append(i)
        names = sorted(by_brand)
        moved = 0
        for b in rng.permutation(len(names)):
            members = np.asarray(by_brand[names[b]])
            if moved + len(members) > 1.5 * target and moved > 0:
                continue  # a huge brand would overshoot the requested rate
            majority = np.bincount(labels[members], minlength=n_leaves).argmax()
            destination = (majority + rng.integers(1, n_leaves)) % n_leaves
            members = members[labels[members] != destination]
            new_label[members] = destination
            injected[members] = True
            moved += len(members)
            if moved >= target:
                break

    noisy = taxonomy.copy()
    noisy[injected] = leaf_paths[new_label[injected]]
    return noisy, injected


# The moves of the self-supervised copies (calibration): no brand moves, since a whole brand moved
# together looks like a confident, consistent label.
SELF_SUPERVISION_REGIMES = ("uniform", "sibling", "lookalike")


def inject_mixture(taxonomy, *, rate, seed, embeddings, brands=None, regimes=SELF_SUPERVISION_REGIMES):
    """A copy of the catalog with ``rate`` of its labels moved, split evenly over ``regimes``."""
    regimes = [r for r in regimes if r != "brand" or brands is not None]
    noisy, injected = np.asarray(taxonomy, dtype=np.int64), np.zeros(len(taxonomy), dtype=bool)
    for j, regime in enumerate(regimes):
        noisy, mask = inject_noise(noisy, regime, rate / len(regimes), seed + 7919 * (j + 1), embeddings, brands)
        injected |= mask
    return noisy, injected
