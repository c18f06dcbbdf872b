"""The assignment policy: the codes a trained RQ-VAE gives a set of products, beyond its forward pass.

Near-duplicates share their level-1 code (`neighbours`), and the last level is spread off collisions
per prefix (`spread`). Arrays in, arrays out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .neighbours import NEAR_DUPLICATE_K, group_nearest_codes, keep_codewords_used, near_duplicate_groups
from .rqvae import RQVAE, exact_float32
from .spread import SPREAD_CANDIDATES, embedding_units, spread_last_level


@dataclass
class Encoded:
    codes: np.ndarray  # (N, L) int64, last level spread off collisions when the config says so
    nearest_codes: np.ndarray  # (N, L) int64: before the last level is spread (nearest codeword there)
    reconstruction_error: np.ndarray  # (N,) float32: 1 - cosine(reconstruction, embedding)
    gaps: np.ndarray  # (N, L) float32: 2nd-nearest minus nearest codeword distance (low = unsure)


def encode(
    model: RQVAE,
    embeddings: np.ndarray,
    *,
    device="cpu",
    batch_size: int = 4096,
    occupied: Iterable[tuple[int, ...]] | Callable[[np.ndarray], Iterable[tuple[int, ...]]] = (),
    first_code_hints: np.ndarray | None = None,
    found: tuple[np.ndarray, np.ndarray] | None = None,
) -> Encoded:
    """Codes, reconstruction error and per-level gaps of every row.

    With `config.assignment.near_duplicate_threshold` the rows' near-duplicate groups (`near_duplicate_groups`)
    each take one level-1 code: the majority of `first_code_hints` (N,) of its rows where any is >= 0
    (level-1 codes of near-duplicates coded earlier, for new products), else the codeword nearest the
    group's mean latent, unless that leaves a codeword some row is nearest to with no rows: then a
    group nearest to it takes it (`neighbours.keep_codewords_used`). Levels below follow from that
    code's residual.

    With `config.assignment.spread_last_level` the last level is assigned per prefix, off collisions, among all
    rows encoded together and `occupied` (full codes already held by other products, or a function
    from the rows' (N, L-1) prefixes to those codes; see `spread.spread_last_level`): the codes of a
    row can depend on the rows encoded with it.

    `found`: the near-duplicate search's neighbours, searched already (`near_duplicate_groups(found=...)`).
    """
    x_all = np.ascontiguousarray(embeddings, dtype=np.float32)
    dims, rules = model.config.model, model.config.assignment
    if x_all.ndim != 2 or x_all.shape[1] != dims.input_dim:
        raise ValueError(
            f"embeddings must be (N, {dims.input_dim}), got {tuple(x_all.shape)}"
        )
    levels = dims.levels
    codes = np.zeros((len(x_all), levels), np.int64)
    errors = np.zeros(len(x_all), np.float32)
    gaps = np.zeros((len(x_all), levels), np.float32)
    spread = rules.spread_last_level and levels > 1
    k = min(SPREAD_CANDIDATES, dims.codebook_sizes[-1])
    cand = np.zeros((len(x_all), k if spread else 0), np.int64)
    cand_dist = np.zeros(cand.shape, np.float32)
    own_first = np.zeros(len(x_all), np.int64)  # each row's own nearest level-1 codeword
    was_training = model.training
    model.to(device).eval()

    def run(rows: np.ndarray, first: np.ndarray | None):
        for start in range(0, len(rows), batch_size):
            sl = rows[start : start + batch_size]
            x = torch.from_numpy(x_all[sl]).to(device)
            forced = None if first is None else torch.from_numpy(first[sl]).to(device)
            recon, q = model(x, forced)
            codes[sl] = q.codes.cpu().numpy()
            own_first[sl] = q.distances[0].argmin(1).cpu().numpy()
            errors[sl] = (1.0 - F.cosine_similarity(recon, x, dim=1)).cpu().numpy()
            for level, dist in enumerate(q.distances):
                # Euclidean (not squared) distances, so gaps are in latent units.
                two = dist.topk(2, dim=1, largest=False).values.clamp_min(0).sqrt()  # (B, 2)
                gaps[sl, level] = (two[:, 1] - two[:, 0]).cpu().numpy()
            if spread:
                top = q.distances[-1].topk(k, dim=1, largest=False)
                cand[sl], cand_dist[sl] = top.indices.cpu().numpy(), top.values.cpu().numpy()

    try:
        with exact_float32(), torch.no_grad():
            units = embedding_units(x_all) if spread or rules.near_duplicate_threshold > 0 else None
            grouping = _group_first_codes(model, x_all, first_code_hints, units, device=device, batch_size=batch_size,
                                          found=found)
            run(np.arange(len(x_all)), None if grouping is None else grouping[0])
            if grouping is not None:  # keep level-1 codewords that only grouped rows were nearest to
                _, groups, fixed = grouping
                kept = keep_codewords_used(own_first, codes[:, 0], groups, fixed=fixed)
                moved = np.flatnonzero(kept != codes[:, 0])
                if len(moved):
                    run(moved, kept)
    finally:
        model.train(was_training)
    nearest = codes
    if spread:
        cand[:, 0] = nearest[:, -1]  # ties in topk: the argmin's choice is the nearest
        if callable(occupied):
            occupied = occupied(np.unique(nearest[:, :-1], axis=0))
        codes = spread_last_level(nearest, cand, cand_dist, units=units, occupied=occupied)
    return Encoded(codes=codes, nearest_codes=nearest, reconstruction_error=errors, gaps=gaps)


def _group_first_codes(model: RQVAE, x_all: np.ndarray, hints: np.ndarray | None, units: np.ndarray | None, *,
                       device, batch_size: int, found=None):
    """(first, groups, fixed) or None: (N,) level-1 code per row from its near-duplicate group (-1:
    the row's own nearest), the rows' group ids, and which rows' groups follow `hints`."""
    rules = model.config.assignment
    if rules.near_duplicate_threshold <= 0 or len(x_all) == 0:
        return None
    groups = near_duplicate_groups(x_all, rules.near_duplicate_threshold, k=NEAR_DUPLICATE_K, device=device,
                                   units=units, max_size=rules.near_duplicate_max_group, found=found)
    hints = np.full(len(x_all), -1, np.int64) if hints is None else np.asarray(hints, np.int64)
    rows = np.flatnonzero((np.bincount(groups)[groups] > 1) | (hints >= 0))
    first = np.full(len(x_all), -1, np.int64)
    fixed = np.zeros(len(x_all), bool)
    if not len(rows):
        return first, groups, fixed
    z = torch.cat([model.latent(torch.from_numpy(x_all[rows[s : s + batch_size]]).to(device))
                   for s in range(0, len(rows), batch_size)]).cpu().numpy()
    first[rows] = group_nearest_codes(z, groups[rows], model.quantizer.codebooks[0].detach().cpu().numpy())
    for g in np.unique(groups[rows[hints[rows] >= 0]]):  # groups with codes from earlier near-duplicates
        members = rows[groups[rows] == g]
        votes = np.bincount(hints[members][hints[members] >= 0])
        first[members] = int(votes.argmax())  # ties: the lower code
        fixed[members] = True
    return first, groups, fixed
