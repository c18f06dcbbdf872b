"""Collision-aware last level: products that would share a full code take the nearest free codeword.

The first L-1 levels say what a product is; the last level mostly tells products apart. With plain
nearest-codeword assignment two different products that land in the same (L-1)-level cell often
pick the same last codeword (BigBasket, 4 x 256: 17-26% of products share their full code with a
different product). As LC-Rec does with its uniform last-level mapping, the last level is assigned
per (L-1)-level prefix instead: a product keeps its nearest codeword unless another product wants
it too; contested products then take, closest pair first, the nearest codeword nobody in their
prefix holds. Products with identical embeddings (`units`) move together: they are the same text
and rightly share a code (the disambiguation token tells them apart). A collision remains only
where a prefix holds more distinct products than the last codebook has words within `candidates`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# The nearest last-level codewords a contested product may take.
SPREAD_CANDIDATES = 32


def embedding_units(x: np.ndarray) -> np.ndarray:
    """(N,) id of each row's distinct embedding (identical rows share an id)."""
    rows = np.ascontiguousarray(x)
    view = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1])))
    return np.unique(view.ravel(), return_inverse=True)[1].ravel()


def spread_last_level(
    codes: np.ndarray,
    candidates: np.ndarray,
    distances: np.ndarray,
    *,
    units: np.ndarray | None = None,
    occupied: Iterable[tuple[int, ...]] = (),
) -> np.ndarray:
    """Codes with the last level moved off collisions.

    codes: (N, L) nearest-codeword codes. candidates / distances: (N, K) the last level's K nearest
    codewords of each product and their distances, nearest first (candidates[:, 0] == codes[:, -1]).
    units: (N,) products with the same id move together (see `embedding_units`); default: each
    product alone. occupied: full codes already held by products outside `codes` (incremental
    assignment: new products are kept off them). Deterministic: ties go to the lower row.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[1] < 1:
        raise ValueError(f"codes must be (N, L), got {codes.shape}")
    n = len(codes)
    candidates = np.asarray(candidates, dtype=np.int64)
    distances = np.asarray(distances, dtype=np.float64)
    if candidates.shape[0] != n or candidates.shape != distances.shape:
        raise ValueError(f"candidates {candidates.shape} and distances {distances.shape} must be (N={n}, K)")
    out = codes.copy()
    if n == 0:
        return out
    units = np.arange(n) if units is None else np.asarray(units)
    _, first, member_of = np.unique(units, return_index=True, return_inverse=True)
    member_of = member_of.ravel()
    rep_codes = codes[first]
    prefixes = [tuple(row) for row in rep_codes[:, :-1].tolist()]
    last = rep_codes[:, -1]

    taken: set[tuple] = {tuple(int(c) for c in code) for code in occupied}
    wanted: dict[tuple, list[int]] = {}
    for u, (prefix, code) in enumerate(zip(prefixes, last.tolist())):
        wanted.setdefault((*prefix, code), []).append(u)
    contested = []
    for key, us in wanted.items():
        if len(us) == 1 and key not in taken:
            taken.add(key)
        else:
            contested.extend(us)
    if contested:
        contested = np.sort(np.asarray(contested))
        cand, dist = candidates[first[contested]], distances[first[contested]]
        k = cand.shape[1]
        rows = np.repeat(np.arange(len(contested)), k)
        order = np.lexsort((np.tile(np.arange(k), len(contested)), rows, dist.ravel()))
        done = np.zeros(len(contested), bool)
        flat = cand.ravel()
        for p in order.tolist():
            r = rows[p]
            if done[r]:
                continue
            key = (*prefixes[contested[r]], int(flat[p]))
            if key in taken:
                continue
            taken.add(key)
            last[contested[r]] = flat[p]
            done[r] = True
        # A prefix with more distinct products than free candidates: the rest keep their nearest.
    out[:, -1] = last[member_of]
    return out
