"""Cost of the collision-aware last level at a million products (synthetic codes, no model).

    .venv/bin/python bench/studies/spread_scale.py [N]

Codes are drawn so that most products collide (heavier than the real catalogs: ~70% vs 27%), to
bound the cost of `embedding_units` (grouping identical rows) and `spread_last_level`.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository

from quantizer.core.spread import embedding_units, spread_last_level  # noqa: E402


def shared_share(codes: np.ndarray) -> float:
    _, counts = np.unique(codes, axis=0, return_counts=True)
    return counts[counts > 1].sum() / len(codes)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = np.random.default_rng(0)
    prefixes = [rng.integers(0, k, n) for k in (64, 32, 16)]
    codes = np.stack([*prefixes, rng.zipf(1.5, n) % 256], 1)
    candidates = np.concatenate([codes[:, -1:], rng.integers(0, 256, (n, 31))], 1)
    distances = np.sort(rng.random((n, 32)), 1).astype(np.float32)
    x = rng.standard_normal((n, 384), dtype=np.float32)

    started = time.perf_counter()
    units = embedding_units(x)
    grouped = time.perf_counter() - started
    started = time.perf_counter()
    spread = spread_last_level(codes, candidates, distances, units=units)
    spreading = time.perf_counter() - started
    print(f"{n:,} products: embedding_units {grouped:.1f} s, spread_last_level {spreading:.1f} s; "
          f"products sharing a full code {shared_share(codes):.3f} -> {shared_share(spread):.3f}")


if __name__ == "__main__":
    main()
