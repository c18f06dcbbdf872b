"""Ids of equal rows, fast: identical embeddings (`spread.embedding_units`), equal codes and prefixes."""

from __future__ import annotations

import numpy as np

_ROW_HASH_CHUNK = 65536


def row_ids(rows: np.ndarray) -> np.ndarray:
    """(N, ...) array -> (N,) int64 ids (0 to the number of distinct rows - 1), equal exactly where two rows are equal
    bit for bit. A multiplicative hash of each row's 32-bit words, then a check of
    every row against the first of its hash group (np.unique over rows when the check fails, which a 64-bit
    hash makes about as likely as n^2 / 2^64). np.unique(rows, axis=0) took 34.4 s for a million 384-d
    vectors on 2 cores; this 3.7 s."""
    rows = np.ascontiguousarray(rows.reshape(len(rows), -1))
    if len(rows) == 0:
        return np.zeros(0, np.int64)
    if rows.dtype.itemsize * rows.shape[1] % 4:
        rows = rows.astype(np.float64 if rows.dtype.kind == "f" else np.int64)
    words = rows.view(np.uint32)
    multipliers = np.random.default_rng(0).integers(1, 2**63, words.shape[1], dtype=np.uint64) | np.uint64(1)
    hashes = np.empty(len(words), np.uint64)
    for s in range(0, len(words), _ROW_HASH_CHUNK):
        part = words[s : s + _ROW_HASH_CHUNK].astype(np.uint64)
        part *= multipliers
        hashes[s : s + _ROW_HASH_CHUNK] = part.sum(1)  # wraps modulo 2^64, as a hash should
    _, first, ids = np.unique(hashes, return_index=True, return_inverse=True)
    for s in range(0, len(rows), _ROW_HASH_CHUNK):
        if not (rows[s : s + _ROW_HASH_CHUNK] == rows[first[ids[s : s + _ROW_HASH_CHUNK]]]).all():
            return np.unique(rows, axis=0, return_inverse=True)[1].ravel().astype(np.int64)
    return ids.astype(np.int64)
