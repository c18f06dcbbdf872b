"""Exact cosine nearest neighbours of the inputs, and the near-duplicate groups built from them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .kmeans import kmeans, squared_distances
from .spread import embedding_units


# Up to this many rows the neighbours are exact (O(N^2 D): ~1 min at 100k rows on 2 CPU cores); above
# it they come from probing cells (`probed_neighbours`), which grows ~N^1.5 (bench/scale.py).
EXACT_LIMIT = 100_000
# A product's near-duplicates are sought among its this many nearest (`near_duplicate_groups`'s k).
NEAR_DUPLICATE_K = 10
# The exact search multiplies this many query rows at a time by every row (`nearest_neighbours`' chunk).
SEARCH_CHUNK = 2048
# An exact search fanned out over workers goes in blocks of this many query rows (`search_blocks`), a multiple of
# SEARCH_CHUNK: a block's products are those of the whole search, so its neighbours are too.
SEARCH_BLOCK = 8 * SEARCH_CHUNK


def search_blocks(n: int) -> list[tuple[int, int]]:
    """The (start, stop) query-row blocks of an exact search of n rows, each `nearest_neighbours(rows=...)`; empty
    where the search is not exact (`probed_neighbours` files every row at once)."""
    if n > EXACT_LIMIT:
        return []
    return [(start, min(start + SEARCH_BLOCK, n)) for start in range(0, n, SEARCH_BLOCK)]


def nearest_neighbours(
    x: torch.Tensor, k: int, *, base: torch.Tensor | None = None, chunk: int | None = None,
    exact_limit: int | None = None, rows: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) -> ((N, k) indices, (N, k) cosines) of each row's k most cosine-similar other rows,
    among the rows where the (N,) bool mask `base` is set (default all): exact up to `exact_limit`
    rows (default `EXACT_LIMIT`), else `probed_neighbours`. k is cut to the base rows a row can have
    (base rows - 1); a row short of k is padded with index -1 and cosine -inf. `rows` (start, stop), a multiple
    of `chunk` apart from the end (`search_blocks`): only those rows' neighbours, the same as theirs in the whole
    search (exact searches only). `chunk`: default SEARCH_CHUNK."""
    chunk = chunk or SEARCH_CHUNK
    xn = F.normalize(x, dim=1)
    base = torch.ones(len(x), dtype=torch.bool, device=x.device) if base is None else base.to(x.device)
    k = max(0, min(k, int(base.sum()) - 1))
    start, stop = rows or (0, len(x))
    if k == 0:
        return (torch.zeros((stop - start, 0), dtype=torch.long, device=x.device),
                torch.zeros((stop - start, 0), device=x.device))
    if len(x) > (EXACT_LIMIT if exact_limit is None else exact_limit):
        if rows is not None:
            raise ValueError(f"{len(x):,} rows are searched by probing cells, all at once: no rows= there")
        return probed_neighbours(xn, k, base=base, chunk=chunk)
    if start % chunk:
        raise ValueError(f"rows must start at a multiple of {chunk}, got {start}")
    idx, sims = [], []
    with torch.no_grad():
        for s in range(start, stop, chunk):
            sim = xn[s : min(s + chunk, stop)] @ xn.t()
            sim[:, ~base] = -float("inf")
            diagonal = torch.arange(len(sim), device=x.device)
            sim[diagonal, diagonal + s] = -float("inf")
            top = sim.topk(k, dim=1)
            idx.append(torch.where(top.values > -float("inf"), top.indices, -1))
            sims.append(top.values)
    return torch.cat(idx), torch.cat(sims)


def probed_neighbours(
    xn: torch.Tensor, k: int, *, base: torch.Tensor | None = None, probes: int = 3, cells: int | None = None,
    chunk: int = 2048, seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate `nearest_neighbours` of unit rows (an inverted file): k-means cells (about sqrt(N))
    from the base rows, every row filed in its `probes` nearest cells, exact search of each cell's
    rows among its base rows; a row's neighbours are the best k over its cells. Pairs that share no
    cell are missed (recall in docs/semantic-ids.md: with 3 probes, 0.95-0.98 of the 10 nearest and
    0.999-1.000 of the cosine >= 0.9 links on the real catalogs; a base row filed in 1 cell and
    queries probing 4-8 cost about as much and found fewer); the same data and seed give the same neighbours
    on any device. Rows short of k candidates are padded with index -1 and cosine -inf."""
    n, device = len(xn), xn.device
    base_rows = torch.arange(n, device=device) if base is None else torch.nonzero(base.to(device)).squeeze(1)
    cells = cells or max(2, int(round(len(base_rows) ** 0.5)))
    probes = min(probes, cells)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sample = base_rows[torch.randperm(len(base_rows), generator=gen)[: 64 * cells].to(device)]
        centroids = kmeans(xn[sample], cells, iters=10, generator=gen)
        near = torch.cat([squared_distances(xn[s : s + chunk], centroids).topk(probes, dim=1, largest=False).indices
                          for s in range(0, n, chunk)])  # (N, probes): every row's cells

        def by_cell(rows: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
            cell_of = near[rows].reshape(-1)
            order = torch.argsort(cell_of, stable=True)
            return rows[torch.div(order, probes, rounding_mode="floor")], [0, *torch.cumsum(
                torch.bincount(cell_of, minlength=cells), 0).tolist()]

        queries_all, q_bounds = by_cell(torch.arange(n, device=device))
        base_all, b_bounds = by_cell(base_rows)
        best_idx = torch.full((n, k), -1, dtype=torch.long, device=device)
        best_sim = torch.full((n, k), -float("inf"), device=device)
        for c in range(cells):
            members = base_all[b_bounds[c] : b_bounds[c + 1]]
            queries = queries_all[q_bounds[c] : q_bounds[c + 1]]
            if len(members) == 0 or len(queries) == 0:
                continue
            vectors = xn[members]
            for s in range(0, len(queries), chunk):
                query = queries[s : s + chunk]
                sim = xn[query] @ vectors.t()
                sim[query[:, None] == members[None, :]] = -float("inf")
                top = sim.topk(min(k, len(members)), dim=1)
                cand_idx = torch.cat([best_idx[query], members[top.indices]], 1)
                cand_sim = torch.cat([best_sim[query], top.values], 1)
                # A pair filed together in two cells is found twice: keep one.
                by_idx, pos = cand_idx.sort(dim=1, stable=True)
                repeat = torch.zeros_like(by_idx, dtype=torch.bool)
                repeat[:, 1:] = (by_idx[:, 1:] == by_idx[:, :-1]) & (by_idx[:, 1:] >= 0)
                cand_sim = cand_sim.scatter(1, pos, torch.where(repeat, -float("inf"), cand_sim.gather(1, pos)))
                keep = cand_sim.topk(k, dim=1)
                best_sim[query] = keep.values
                best_idx[query] = torch.where(keep.values > -float("inf"), cand_idx.gather(1, keep.indices), -1)
    return best_idx, best_sim


def input_neighbours(x: torch.Tensor, k: int, *, chunk: int | None = None,
                     found: torch.Tensor | None = None) -> torch.Tensor:
    """(N, D) -> (N, k) indices of each row's k most cosine-similar other rows (where the approximate
    search found fewer than k, the rest repeat its nearest, or the row itself if it found none). `found`: the
    indices `nearest_neighbours(x, k)` gives, searched already (a fanned-out search's blocks)."""
    idx = nearest_neighbours(x, k, chunk=chunk)[0] if found is None else found.to(x.device)
    if len(idx) != len(x):
        raise ValueError(f"found neighbours for {len(idx)} rows, not {len(x)}")
    first = torch.where(idx[:, 0] >= 0, idx[:, 0], torch.arange(len(idx), device=idx.device))
    return torch.where(idx >= 0, idx, first[:, None])


def distinct_rows(units: np.ndarray) -> np.ndarray:
    """The first row of each distinct embedding (`embedding_units`' ids), in the order of the ids: the rows
    `near_duplicate_groups` searches."""
    return np.unique(units, return_index=True)[1]


def near_duplicate_groups(
    x: np.ndarray, threshold: float, *, k: int = NEAR_DUPLICATE_K, device="cpu", units: np.ndarray | None = None,
    max_size: int = 0, step: float = 0.01, found: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """(N,) group id per row: connected components of the graph joining each distinct row to those of
    its k nearest distinct rows with cosine >= threshold. O(N^2 D) like the training's neighbour term.

    `max_size` (distinct rows, 0 = no limit): a component larger than that is split along its own
    edges at a threshold raised by `step` until every part fits: near-identical attribute records
    chain thousands of products at 0.9 (Instacart's discovery texts: 3,676 in one component), which
    one level-1 code cannot hold.

    `found`: (indices, cosines) that `nearest_neighbours` gives the `distinct_rows` with this k, searched already
    (a fanned-out search's blocks)."""
    x = np.ascontiguousarray(x, np.float32)
    # Identical rows are one node: else a text listed more than k times fills its own neighbour list.
    if units is None:  # (callers that already have them pass `embedding_units(x)`)
        units = embedding_units(x) if len(x) else np.zeros(0, np.int64)
    first = distinct_rows(units)
    n = len(first)
    if n < 2:
        return np.zeros(len(x), np.int64)
    if found is None:
        idx, sims = (t.cpu().numpy() for t in nearest_neighbours(torch.as_tensor(x[first], device=device), k))
    else:
        idx, sims = (np.asarray(a) for a in found)
        if idx.shape != (n, min(k, n - 1)) or sims.shape != idx.shape:
            raise ValueError(f"found neighbours must be ({n}, {min(k, n - 1)}) for {n} distinct rows, got "
                             f"{idx.shape} and {sims.shape}")
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
