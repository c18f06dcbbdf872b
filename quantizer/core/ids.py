"""Semantic ID strings and the append-only disambiguation token."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence


def code_string(codes_row: Sequence[int]) -> str:
    """(6, 19, 32, 63) -> "6_19_32_63"."""
    return "_".join(str(int(c)) for c in codes_row)


def disambiguate(
    keys: Sequence[Hashable], existing: dict[int, int] | None = None
) -> list[int]:
    """Append-only disambiguation tokens, one per product.

    keys: each product's full code (tuple or code string), in a stable product order (e.g. by
    product id). existing: {position in `keys`: token it already holds} for products that were
    coded before. A product that holds a token keeps it; a new product takes the smallest token
    not yet used for its code. (code, token) is therefore unique, and earlier products never
    move when others join their code.
    """
    existing = existing or {}
    n = len(keys)
    bad = [i for i in existing if not 0 <= i < n]
    if bad:
        raise ValueError(f"existing tokens refer to positions outside 0..{n - 1}: {bad[:5]}")
    used: dict[Hashable, set[int]] = defaultdict(set)
    tokens: list[int | None] = [None] * n
    for i in sorted(existing):
        key, token = keys[i], int(existing[i])
        if token < 0:
            raise ValueError(f"product {i}: token must be >= 0, got {token}")
        if token in used[key]:
            raise ValueError(f"product {i}: token {token} for code {key!r} is held twice")
        used[key].add(token)
        tokens[i] = token
    next_free: dict[Hashable, int] = defaultdict(int)
    for i in range(n):
        if tokens[i] is not None:
            continue
        key = keys[i]
        t = next_free[key]
        while t in used[key]:
            t += 1
        used[key].add(t)
        next_free[key] = t + 1
        tokens[i] = t
    return tokens  # type: ignore[return-value]
