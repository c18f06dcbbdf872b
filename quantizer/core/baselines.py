"""Non-learned baseline: residual k-means (k-means per level on what the levels above left)."""

from __future__ import annotations

import numpy as np

from .neighbours import NEAR_DUPLICATE_K, group_nearest_codes, keep_codewords_used, near_duplicate_groups
from .spread import SPREAD_CANDIDATES, embedding_units, spread_last_level


def residual_kmeans(
    embeddings: np.ndarray,
    codebook_sizes: tuple[int, ...] | list[int],
    *,
    seed: int = 0,
    iters: int = 20,
    device="cpu",
    spread: bool = True,
    candidates: int = SPREAD_CANDIDATES,
    near_duplicate_threshold: float = 0.9,
    near_duplicate_k: int = NEAR_DUPLICATE_K,
    near_duplicate_max_group: int = 100,
) -> np.ndarray:
    """(N, D) float32 -> (N, L) int64 codes: faiss k-means on the CPU, plain torch k-means on
    CUDA (or where faiss is not installed, as on the GPU machine). `spread`: the last level is
    moved off collisions as the RQ-VAE's is (`spread.spread_last_level`), and near-duplicate groups share
    their level-1 centroid (`near_duplicate_threshold`, 0 = off), so both compare alike."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings must be a non-empty (N, D) array, got {x.shape}")
    k = min(int(candidates), int(codebook_sizes[-1]), len(x)) if spread and len(codebook_sizes) > 1 else 1
    units = embedding_units(x) if k > 1 or near_duplicate_threshold > 0 else None
    groups = None
    if near_duplicate_threshold > 0:
        groups = near_duplicate_groups(x, near_duplicate_threshold, k=near_duplicate_k, device=device, units=units,
                                       max_size=near_duplicate_max_group)
    codes, cand, dist = _residual_kmeans(x, codebook_sizes, seed=seed, iters=iters, device=device, k=k, groups=groups)
    if k == 1:
        return codes
    cand[:, 0] = codes[:, -1]
    return spread_last_level(codes, cand, dist, units=units)


def _first_level(assign: np.ndarray, x: np.ndarray, centroids: np.ndarray, groups) -> np.ndarray:
    """Level-1 assignment with each near-duplicate group on the centroid nearest its mean (as the
    RQ-VAE's: no centroid left empty where a group can keep it)."""
    if groups is None:
        return assign
    rows = np.flatnonzero(np.bincount(groups)[groups] > 1)
    grouped = assign.copy()
    grouped[rows] = group_nearest_codes(x[rows], groups[rows], centroids)
    return keep_codewords_used(assign, grouped, groups)


def _residual_kmeans(x, codebook_sizes, *, seed, iters, device, k, groups=None):
    """(codes, last level's k nearest centroids, their squared distances)."""
    try:
        import faiss  # imported here so the module loads without faiss
    except ImportError:
        faiss = None
    if faiss is None or str(device).startswith("cuda"):
        return _residual_kmeans_torch(x, codebook_sizes, seed=seed, iters=iters, device=device, k=k, groups=groups)

    residual = x.copy()
    n, d = residual.shape
    codes = np.zeros((n, len(codebook_sizes)), np.int64)
    for level, size in enumerate(codebook_sizes):
        k_eff = min(int(size), n)
        km = faiss.Kmeans(d, k_eff, niter=iters, seed=seed + level, verbose=False,
                          max_points_per_centroid=max(256, n // k_eff + 1))
        km.train(residual)
        dist, assign = km.index.search(residual, k if level == len(codebook_sizes) - 1 else 1)
        if level == 0:
            assign[:, 0] = _first_level(assign[:, 0], residual, km.centroids, groups)
        codes[:, level] = assign[:, 0]
        residual -= km.centroids[assign[:, 0]]
    return codes, assign, dist


def _residual_kmeans_torch(x, codebook_sizes, *, seed: int, iters: int, device, k: int, groups=None):
    import torch

    from .kmeans import kmeans, squared_distances

    residual = torch.as_tensor(x, device=device).clone()
    codes = np.zeros((len(residual), len(codebook_sizes)), np.int64)
    for level, size in enumerate(codebook_sizes):
        generator = torch.Generator().manual_seed(seed + level)
        centroids = kmeans(residual, int(size), iters=iters, generator=generator)
        k_level = k if level == len(codebook_sizes) - 1 else 1
        top = [squared_distances(chunk, centroids).topk(k_level, dim=1, largest=False)
               for chunk in residual.split(65536)]
        assign = torch.cat([t.indices for t in top])
        if level == 0:
            first = _first_level(assign[:, 0].cpu().numpy(), residual.cpu().numpy(), centroids.cpu().numpy(), groups)
            assign[:, 0] = torch.from_numpy(first).to(assign.device)
        codes[:, level] = assign[:, 0].cpu().numpy()
        residual -= centroids[assign[:, 0]]
    dist = torch.cat([t.values for t in top])
    return codes, assign.cpu().numpy(), dist.cpu().numpy()
