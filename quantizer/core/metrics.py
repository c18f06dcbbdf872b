"""Intrinsic metrics of a set of codes (DESIGN.md section 8). Flat, JSON-able dict out."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import normalized_mutual_info_score

from .rows import row_ids
from .sampling import row_sample

HIGH_SIM = 0.9


def shared_prefix_levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, L) x (P, L) codes -> (P,) number of leading levels that agree."""
    return np.cumprod(a == b, axis=1).sum(1)


def _neighbours(
    x: np.ndarray, anchors: np.ndarray, knn: int, *, chunk: int | None = None, device: str = "cpu"
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Exact cosine kNN of `anchors` against all rows (torch matmul on `device` in chunks of at most 2^28
    similarities, 1 GiB), plus every (anchor, j) pair with cosine >= HIGH_SIM. Pairs where both ends
    are anchors are kept once."""
    chunk = chunk or max(1, min(1024, 2**28 // max(len(x), 1)))
    xt = torch.from_numpy(x).to(device)
    is_anchor = torch.zeros(len(x), dtype=torch.bool, device=device)
    anchors_t = torch.from_numpy(anchors).to(device)
    is_anchor[anchors_t] = True
    k = min(knn, len(x) - 1)
    knn_idx, hi_i, hi_j = [], [], []
    with torch.no_grad():
        for s in range(0, len(anchors), chunk):
            a = anchors_t[s : s + chunk]
            sim = xt[a] @ xt.t()  # (c, N)
            sim[torch.arange(len(a), device=device), a] = -torch.inf  # not its own neighbour
            knn_idx.append(sim.topk(k, dim=1).indices.cpu().numpy())
            r, c = (sim >= HIGH_SIM).nonzero(as_tuple=True)
            ai = a[r]
            keep = ~is_anchor[c] | (c > ai)
            hi_i.append(ai[keep].cpu().numpy())
            hi_j.append(c[keep].cpu().numpy())
    return np.concatenate(knn_idx), hi_i, hi_j


def _purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    _, cl = np.unique(clusters, return_inverse=True)
    _, lab = np.unique(labels, return_inverse=True)
    table = np.zeros((cl.max() + 1, lab.max() + 1), np.int64)
    np.add.at(table, (cl, lab), 1)
    return float(table.max(1).sum() / len(labels))


def collision_rates(x: np.ndarray, codes: np.ndarray) -> tuple[float, float]:
    """(rate, raw rate): share of products whose full code is shared with a product carrying a
    different embedding / with any other product."""
    code_id, emb_id = row_ids(codes), row_ids(x)
    code_size = np.bincount(code_id)
    distinct = np.unique(code_id * (int(emb_id.max(initial=0)) + 1) + emb_id)
    distinct_per_code = np.bincount(distinct // (int(emb_id.max(initial=0)) + 1), minlength=len(code_size))
    raw = float((code_size[code_id] > 1).mean())
    real = float((distinct_per_code[code_id] > 1).mean())
    return real, raw


def intrinsic_metrics(
    embeddings: np.ndarray,
    codes: np.ndarray,
    taxonomy: np.ndarray | None = None,
    *,
    seed: int = 0,
    n_pairs: int = 20000,
    knn: int = 20,
    codebook_sizes: tuple[int, ...] | None = None,
    reconstruction_error: np.ndarray | None = None,
    max_anchors: int = 10000,
    device: str = "cpu",
) -> dict:
    """Metrics of DESIGN.md section 8.

    spearman: Spearman(cosine, shared leading code levels) over n_pairs pairs, half uniform
    random pairs, half (product, one of its `knn` exact nearest neighbours) pairs, so every
    depth occurs. high_sim_*: over (anchor, j) pairs with cosine >= 0.9 where anchors are up to
    `max_anchors` sampled products (all products when N <= max_anchors: then exact).
    codebook_sizes: for utilization; defaults to max code + 1 per level. device: where the exact kNN's
    similarities are computed (the metrics' largest part at a million products).
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or len(codes) != len(x):
        raise ValueError(f"codes must be (N, L) with N={len(x)}, got {codes.shape}")
    n, levels = codes.shape
    rng = np.random.default_rng(seed)
    out: dict = {"n": int(n), "levels": int(levels)}

    norms = np.linalg.norm(x, axis=1, keepdims=True)
    xn = x / np.maximum(norms, 1e-12)

    anchors = row_sample(n, max_anchors, rng)
    knn_idx, hi_i, hi_j = _neighbours(xn, anchors, knn, device=device)

    # Spearman over random + kNN pairs.
    half = n_pairs // 2
    ri = rng.integers(0, n, half)
    rj = (ri + rng.integers(1, n, half)) % n  # never the same product
    pick = rng.integers(0, len(anchors), n_pairs - half)
    ki = anchors[pick]
    kj = knn_idx[pick, rng.integers(0, knn_idx.shape[1], len(pick))]
    pi, pj = np.concatenate([ri, ki]), np.concatenate([rj, kj])
    cos = (xn[pi] * xn[pj]).sum(1)
    shared = shared_prefix_levels(codes[pi], codes[pj])
    rho = spearmanr(cos, shared).statistic if np.ptp(shared) > 0 and np.ptp(cos) > 0 else 0.0
    out["spearman"] = float(rho)
    out["spearman_pairs"] = int(len(pi))
    for depth in range(levels + 1):
        out[f"pairs_sharing_{depth}"] = int((shared == depth).sum())

    hi_i, hi_j = np.concatenate(hi_i), np.concatenate(hi_j)
    out["high_sim_pairs"] = int(len(hi_i))
    if len(hi_i):
        hs = shared_prefix_levels(codes[hi_i], codes[hi_j])
        out["high_sim_same_l1"] = float((hs >= 1).mean())
        out["high_sim_same_full"] = float((hs >= levels).mean())
        # Excluding exact duplicates (identical texts share codes by construction).
        distinct = (xn[hi_i] != xn[hi_j]).any(1)
        out["high_sim_distinct_pairs"] = int(distinct.sum())
        if distinct.any():
            out["high_sim_distinct_same_l1"] = float((hs[distinct] >= 1).mean())
    else:
        out["high_sim_same_l1"] = None
        out["high_sim_same_full"] = None

    if taxonomy is not None:
        tax = np.asarray(taxonomy)
        tax = tax[:, None] if tax.ndim == 1 else tax
        for col in range(min(2, tax.shape[1])):
            valid = tax[:, col] >= 0
            name = f"l{col + 1}"
            if valid.sum() >= 2:
                out[f"nmi_{name}"] = float(
                    normalized_mutual_info_score(tax[valid, col], codes[valid, 0])
                )
                out[f"purity_{name}"] = _purity(tax[valid, col], codes[valid, 0])

    for level in range(levels):
        k = codebook_sizes[level] if codebook_sizes else int(codes[:, level].max()) + 1
        counts = np.bincount(codes[:, level], minlength=k).astype(np.float64)
        p = counts[counts > 0] / n
        out[f"utilization_l{level + 1}"] = float((counts > 0).sum() / k)
        out[f"perplexity_l{level + 1}"] = float(np.exp(-(p * np.log(p)).sum()))

    out["collision_rate"], out["collision_rate_raw"] = collision_rates(x, codes)
    out["distinct_codes"] = int(row_ids(codes).max(initial=-1)) + 1
    if reconstruction_error is not None:
        err = np.asarray(reconstruction_error, dtype=np.float64)
        out["reconstruction_cosine"] = float(1.0 - err.mean())
    return out
