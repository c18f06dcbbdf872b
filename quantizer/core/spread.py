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

from .rows import row_ids

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

    The contested products take their codewords closest pair first: of all (product, candidate) pairs in
    ascending distance (ties: lower row, then nearer candidate), a pair is taken when its product has none
    yet and its full code is free. Computed in rounds (`_closest_pairs_first`), arrays at a time.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[1] < 1:
        raise ValueError(f"codes must be (N, L), got {codes.shape}")
    n, levels = codes.shape
    candidates = np.asarray(candidates, dtype=np.int64)
    distances = np.asarray(distances)
    if candidates.shape[0] != n or candidates.shape != distances.shape:
        raise ValueError(f"candidates {candidates.shape} and distances {distances.shape} must be (N={n}, K)")
    out = codes.copy()
    if n == 0:
        return out
    units = np.arange(n) if units is None else np.asarray(units)
    _, first, member_of = np.unique(units, return_index=True, return_inverse=True)
    rep = codes[first]
    last = rep[:, -1].copy()
    held = np.asarray([tuple(code) for code in occupied], dtype=np.int64).reshape(-1, levels)
    # A full code as one integer: its prefix's id, then its last codeword.
    prefix_of = row_ids(np.concatenate([rep[:, :-1], held[:, :-1]]))
    width = int(max(last.max(), candidates.max(initial=0), held[:, -1].max(initial=0))) + 1
    own = prefix_of[: len(rep)] * width + last
    outside = prefix_of[len(rep) :] * width + held[:, -1]
    _, inverse, counts = np.unique(own, return_inverse=True, return_counts=True)
    alone = counts[inverse.ravel()] == 1
    contested = np.flatnonzero(~alone | np.isin(own, outside))
    if len(contested):
        cand = candidates[first[contested]]
        # The contested prefixes' full codes numbered apart: (contested prefix, codeword) -> one index.
        prefixes, contested_prefix = np.unique(prefix_of[contested], return_inverse=True)
        slot = np.full(int(prefix_of.max()) + 1, -1)
        slot[prefixes] = np.arange(len(prefixes))
        held_codes = np.concatenate([outside, own[alone]])
        held_slot = slot[held_codes // width]
        taken = np.zeros(len(prefixes) * width, bool)
        taken[(held_slot * width + held_codes % width)[held_slot >= 0]] = True
        won = _closest_pairs_first(_pair_order(distances[first[contested]]),
                                   contested_prefix.reshape(-1, 1) * width + cand, taken)
        rows = np.flatnonzero(won >= 0)
        last[contested[rows]] = cand[rows, won[rows]]
        # A prefix with more distinct products than free candidates: the rest keep their nearest.
    out[:, -1] = last[member_of.ravel()]
    return out


def _pair_order(distances: np.ndarray) -> np.ndarray:
    """(M, K) distances -> (M, K) int64 keys, distinct, ascending as (distance, row, column): the distance's
    order as 32 bits (float32's own where it holds the values, else their rank), then the row, then the column."""
    m, k = distances.shape
    row_bits, column_bits = (m - 1).bit_length(), (k - 1).bit_length()
    if row_bits + column_bits > 31:
        raise ValueError(f"{m:,} contested products of {k} candidates: more pairs than the spread can order")
    narrow = distances.astype(np.float32) + np.float32(0.0)  # -0.0 -> 0.0
    if np.array_equal(narrow, distances):
        bits = narrow.view(np.int32)
        level = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).astype(np.int64) + (1 << 31)  # negatives flipped: ascending
    else:
        level = np.unique(distances, return_inverse=True)[1].reshape(m, k).astype(np.int64)
    return (level << (row_bits + column_bits)) | (np.arange(m)[:, None] << column_bits) | np.arange(k)


def _closest_pairs_first(order: np.ndarray, key_of: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """(M,) the column each row takes (-1: none free), pairs taken closest first (`order`, (M, K) distinct keys)
    where a pair's code (`key_of`, (M, K) indices into the bool `taken`, updated in place) is free.

    In rounds, not pair by pair: a round takes every pair that is both its row's first free pair and its code's
    first pair among the rows still open. The pair by pair greedy takes each of those too (what could come before
    it in the order cannot take its row or its code), so the result is the same (greedy matching by locally
    dominant edges); the closest open pair is taken in every round, and a few rounds do it."""
    won = np.full(len(order), -1, np.int64)
    rows = np.arange(len(order))
    never = np.iinfo(np.int64).max
    first_of_code = np.full(len(taken), never)
    while len(rows):
        codes = key_of[rows]
        open_order = np.where(taken[codes], never, order[rows])
        column = open_order.argmin(1)
        best = open_order[np.arange(len(rows)), column]
        some = best < never  # rows whose candidates are all taken keep their nearest
        rows, codes, open_order, column, best = rows[some], codes[some], open_order[some], column[some], best[some]
        open_pairs = open_order < never
        np.minimum.at(first_of_code, codes[open_pairs], open_order[open_pairs])
        code = codes[np.arange(len(rows)), column]
        wins = first_of_code[code] == best
        won[rows[wins]] = column[wins]
        taken[code[wins]] = True
        first_of_code[codes[open_pairs]] = never
        rows = rows[~wins]
    return won
