"""Exact cosine nearest neighbours of the inputs, and the near-duplicate groups built from them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .spread import embedding_units


def nearest_neighbours(x: torch.Tensor, k: int, *, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) -> ((N, k) indices, (N, k) cosines) of each row's k most cosine-similar other rows."""
    xn = F.normalize(x, dim=1)
    k = min(k, len(x) - 1)
    idx, sims = [], []
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            sim = xn[s : s + chunk] @ xn.t()
            rows = torch.arange(len(sim), device=x.device)
            sim[rows, rows + s] = -float("inf")
            top = sim.topk(k, dim=1)
            idx.append(top.indices)
            sims.append(top.values)
    return torch.cat(idx), torch.cat(sims)


def input_neighbours(x: torch.Tensor, k: int, *, chunk: int = 2048) -> torch.Tensor:
    """(N, D) -> (N, k) indices of each row's k most cosine-similar other rows."""
    return nearest_neighbours(x, k, chunk=chunk)[0]


def near_duplicate_groups(
    x: np.ndarray, threshold: float, *, k: int = 10, device="cpu", units: np.ndarray | None = None,
    max_size: int = 0, step: float = 0.01,
) -> np.ndarray:
    """(N,) group id per row: connected components of the graph joining each distinct row to those of
    its k nearest distinct rows with cosine >= threshold. O(N^2 D) like the training's neighbour term.

    `max_size` (distinct rows, 0 = no limit): a component larger than that is split along its own
    edges at a threshold raised by `step` until every part fits: near-identical attribute records
    chain thousands of products at 0.9 (Instacart's discovery texts: 3,676 in one component), which
    one level-1 code cannot hold."""
    x = np.ascontiguousarray(x, np.float32)
    # Identical rows are one node: else a text listed more than k times fills its own neighbour list.
    if units is None:  # (callers that already have them pass `embedding_units(x)`)
        units = embedding_units(x) if len(x) else np.zeros(0, np.int64)
    _, first = np.unique(units, return_index=True)
    n = len(first)
    if n < 2:
        return np.zeros(len(x), np.int64)
    idx, sims = nearest_neighbours(torch.as_tensor(x[first], device=device), k)
    idx, sims = idx.cpu().numpy(), sims.cpu().numpy()
    rows, cols = np.nonzero(sims >= threshold)
    a, b, w = rows, idx[rows, cols], sims[rows, cols]
    labels = _components(a, b, n)
    if max_size > 0:
        labels = _split_large(labels, a, b, w, threshold, max_size, step)
    return labels[units]


def _components(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def _split_large(labels, a, b, w, threshold, max_size, step) -> np.ndarray:
    """Components larger than `max_size` re-cut from their own edges at threshold + step, + 2 step...
    (edges of cosine 1 are never cut; a part that still does not fit then stays whole)."""
    labels = labels.copy()
    level = threshold
    while True:
        sizes = np.bincount(labels)
        large = sizes[labels] > max_size
        level += step
        if not large.any() or level > 1.0:
            return labels
        keep = large[a] & (w >= level)
        nodes = np.flatnonzero(large)
        local = np.full(len(labels), -1, np.int64)
        local[nodes] = np.arange(len(nodes))
        parts = _components(local[a[keep]], local[b[keep]], len(nodes))
        labels[nodes] = labels.max() + 1 + parts
        _, labels = np.unique(labels, return_inverse=True)
        labels = labels.reshape(-1).astype(np.int64)


def group_nearest_codes(points: np.ndarray, groups: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """(N,) per row: the codeword nearest the mean of its group's points (which minimises the
    group's summed squared distance to one codeword)."""
    from scipy.sparse import coo_matrix

    points = np.asarray(points, np.float64)
    if not len(points):
        return np.zeros(0, np.int64)
    _, inverse = np.unique(groups, return_inverse=True)
    inverse = inverse.ravel()
    members = coo_matrix((np.ones(len(points)), (inverse, np.arange(len(points))))).tocsr()
    means = (members @ points) / np.bincount(inverse)[:, None]
    codebook = np.asarray(codebook, np.float64)
    dist = (means**2).sum(1)[:, None] - 2.0 * means @ codebook.T + (codebook**2).sum(1)[None, :]
    return dist.argmin(1)[inverse]


def keep_codewords_used(
    nearest: np.ndarray, assigned: np.ndarray, groups: np.ndarray, *, fixed: np.ndarray | None = None
) -> np.ndarray:
    """(N,) level-1 codes like `assigned` (each near-duplicate group on one codeword), except that no
    codeword some row is nearest to is left with no rows where a group can keep it: for each such
    codeword (lowest first) the group with the most members nearest to it moves there (ties: lower
    group id), if the codeword it leaves keeps other rows. A group moves at most once; groups with a
    `fixed` row (codes from earlier near-duplicates) stay. Every group still shares one codeword, one
    of its members' own nearest."""
    nearest = np.asarray(nearest, np.int64)
    out = np.asarray(assigned, np.int64).copy()
    if not len(out):
        return out
    n_codes = int(max(nearest.max(), out.max())) + 1
    counts = np.bincount(out, minlength=n_codes)
    orphans = np.flatnonzero((np.bincount(nearest, minlength=n_codes) > 0) & (counts == 0))
    if not len(orphans):
        return out
    groups = np.asarray(groups, np.int64)
    settled = np.zeros(int(groups.max()) + 1, bool)
    if fixed is not None:
        settled[groups[np.asarray(fixed, bool)]] = True
    size = np.bincount(groups)
    for code in orphans:
        votes = np.bincount(groups[(nearest == code) & (out != code)])
        for g in np.lexsort((np.arange(len(votes)), -votes))[: int((votes > 0).sum())]:
            members = np.flatnonzero(groups == g)
            left = out[members[0]]
            if settled[g] or counts[left] <= size[g]:
                continue
            out[members] = code
            counts[left] -= size[g]
            counts[code] += size[g]
            settled[g] = True
            break
    return out
