"""Squared distances and plain Lloyd k-means in torch (CPU or CUDA): codebook initialisation and the
coarse cells of the approximate nearest-neighbour search."""

from __future__ import annotations

import torch


def squared_distances(r: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(B, d) x (K, d) -> (B, K) squared L2 distances, clamped at 0."""
    d = r.pow(2).sum(1, keepdim=True) - 2.0 * r @ codebook.t() + codebook.pow(2).sum(1)[None, :]
    return d.clamp_min_(0.0) if not d.requires_grad else d.clamp_min(0.0)


def kmeans(
    x: torch.Tensor, k: int, *, iters: int = 20, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Plain Lloyd k-means in torch (CPU or CUDA), k-means++ seeding, empty clusters re-seeded
    from the points farthest from their centroid. Returns (k, d) centroids."""
    n, d = x.shape
    if n == 0:
        raise ValueError("k-means needs at least one point")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)

    def pick(weights: torch.Tensor | None, count: int) -> torch.Tensor:
        if weights is None or float(weights.sum()) <= 0:
            return torch.randint(0, n, (count,), generator=gen)
        return torch.multinomial(weights.double().cpu(), count, replacement=True, generator=gen)

    if n <= k:
        # Fewer points than codewords: every point is a centroid, the rest are jittered copies.
        extra = x[pick(None, k - n).to(x.device)]
        noise = torch.randn(extra.shape, generator=gen).to(x.device) * 1e-3 * (x.std() + 1e-6)
        return torch.cat([x, extra + noise], 0).clone()

    # k-means++ seeding (sequential, cheap for k ~ 256).
    centroids = torch.empty(k, d, device=x.device, dtype=x.dtype)
    centroids[0] = x[pick(None, 1).to(x.device)][0]
    closest = squared_distances(x, centroids[:1]).squeeze(1)
    for c in range(1, k):
        idx = pick(closest, 1).to(x.device)
        centroids[c] = x[idx][0]
        closest = torch.minimum(closest, squared_distances(x, centroids[c : c + 1]).squeeze(1))

    for _ in range(iters):
        dist = squared_distances(x, centroids)  # (n, k)
        best_d, assign = dist.min(1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
        empty = (~filled).nonzero().squeeze(1)
        if len(empty):
            far = best_d.argsort(descending=True)[: len(empty)]
            centroids[empty] = x[far]
    return centroids
