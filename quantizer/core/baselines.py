"""Non-learned baseline: residual k-means (k-means per level on what the levels above left)."""

from __future__ import annotations

import numpy as np


def residual_kmeans(
    embeddings: np.ndarray,
    codebook_sizes: tuple[int, ...] | list[int],
    *,
    seed: int = 0,
    iters: int = 20,
    device="cpu",
) -> np.ndarray:
    """(N, D) float32 -> (N, L) int64 codes: faiss k-means on the CPU, plain torch k-means on
    CUDA (or where faiss is not installed, as on the GPU machine)."""
    try:
        import faiss  # imported here so the module loads without faiss
    except ImportError:
        faiss = None
    if faiss is None or str(device).startswith("cuda"):
        return _residual_kmeans_torch(embeddings, codebook_sizes, seed=seed, iters=iters, device=device)

    residual = np.ascontiguousarray(embeddings, dtype=np.float32).copy()
    if residual.ndim != 2 or len(residual) == 0:
        raise ValueError(f"embeddings must be a non-empty (N, D) array, got {residual.shape}")
    n, d = residual.shape
    codes = np.zeros((n, len(codebook_sizes)), np.int64)
    for level, k in enumerate(codebook_sizes):
        k_eff = min(int(k), n)
        km = faiss.Kmeans(d, k_eff, niter=iters, seed=seed + level, verbose=False,
                          max_points_per_centroid=max(256, n // k_eff + 1))
        km.train(residual)
        _, assign = km.index.search(residual, 1)
        codes[:, level] = assign[:, 0]
        residual -= km.centroids[assign[:, 0]]
    return codes


def _residual_kmeans_torch(embeddings, codebook_sizes, *, seed: int, iters: int, device) -> np.ndarray:
    import torch

    from .rqvae import kmeans, squared_distances

    residual = torch.as_tensor(np.ascontiguousarray(embeddings, dtype=np.float32), device=device).clone()
    codes = np.zeros((len(residual), len(codebook_sizes)), np.int64)
    for level, k in enumerate(codebook_sizes):
        generator = torch.Generator().manual_seed(seed + level)
        centroids = kmeans(residual, int(k), iters=iters, generator=generator)
        assign = torch.cat([squared_distances(chunk, centroids).argmin(1)
                            for chunk in residual.split(65536)])
        codes[:, level] = assign.cpu().numpy()
        residual -= centroids[assign]
    return codes
