"""The training loop: L_total = L_reconstruction + L_rq + lambda * L_contrastive.

L_reconstruction: squared L2 between the embedding and its reconstruction (mean over batch).
L_rq: sum over levels of ||e - sg(r)||^2 + beta * ||r - sg(e)||^2 (codebook + commitment).
L_similarity (weight `similarity_weight`): MSE between latent and input cosine over batch pairs.
L_neighbour (weight `neighbour_weight`): near-duplicates / input-space kNN pairs share their
  level-1 code, dissimilar pairs don't (see `neighbour_loss`).
L_unique (weight `unique_weight`): kNN pairs that share every level but the last are pushed
  apart at the last level (collisions; see `uniqueness_loss`).
Every term is reported separately, per epoch, in the history.
L_contrastive: for each level l, soft assignments p_i^l = softmax(-dist / T) give
  P(i, j share code l) = <p_i^l, p_j^l>; a class-balanced binary cross-entropy pushes it to a
  target graded by where i and j sit in the taxonomy (see `relation_targets`), levels
  weighted by `level_weights`. Only pairs within a batch where both products are categorized.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .config import RQVAEConfig
from .neighbours import input_neighbours
from .rqvae import RQVAE, QuantizerOutput, exact_float32
from .sampling import HierarchicalBatchSampler, RandomBatchSampler, row_sample, validate_taxonomy

ProgressFn = Callable[[int, int, dict], None]

# Pair relations, most specific first.
SAME_LEAF, SIBLING, COUSIN, UNRELATED, UNKNOWN = 0, 1, 2, 3, 4


@dataclass
class TrainResult:
    model: RQVAE
    config: RQVAEConfig
    history: list[dict] = field(default_factory=list)  # one dict per epoch, every loss term
    seconds: float = 0.0
    train_products: int = 0  # rows trained on (`training_sample`)


def pair_relations(tax: torch.Tensor) -> torch.Tensor:
    """(B, T) taxonomy ids -> (B, B) relation codes (SAME_LEAF ... UNKNOWN).

    shared = number of leading taxonomy levels two products have in common; depth = level of
    each product's leaf. Same leaf: shared == both depths. Sibling: they share the parent of
    the deeper leaf. Cousin: some ancestor below the root. UNKNOWN: either is uncategorized
    (or the diagonal)."""
    present = tax >= 0  # (B, T)
    depth = present.long().cumprod(1).sum(1)  # (B,)
    equal = (tax[:, None, :] == tax[None, :, :]) & present[:, None, :] & present[None, :, :]
    shared = equal.long().cumprod(2).sum(2)  # (B, B)
    di, dj = depth[:, None], depth[None, :]
    deeper = torch.maximum(di, dj)
    rel = torch.full_like(shared, UNRELATED)
    rel[shared >= 1] = COUSIN
    rel[(shared >= 1) & (shared == deeper - 1)] = SIBLING
    rel[(shared == di) & (shared == dj) & (shared >= 1)] = SAME_LEAF
    unknown = (di == 0) | (dj == 0)
    rel[unknown] = UNKNOWN
    rel.fill_diagonal_(UNKNOWN)
    return rel


def relation_targets(config: RQVAEConfig, device) -> torch.Tensor:
    """(L, 5) target P(share code at level l) for each relation (UNKNOWN column unused)."""
    rel = torch.tensor(
        [config.same_leaf_target, config.sibling_target, config.cousin_target,
         config.unrelated_target, 0.0],
        dtype=torch.float32,
    )
    scales = torch.tensor(config.level_target_scales, dtype=torch.float32)[:, None]
    return (rel[None, :] * scales).clamp(0.0, 1.0).to(device)


def soft_assignments(dist: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, K) squared distances -> (B, K) soft code assignment. Distances are divided by their
    per-row mean so the temperature does not depend on the latent's scale."""
    scale = dist.mean(1, keepdim=True).detach().clamp_min(1e-8)
    return torch.softmax(-dist / (scale * temperature), dim=1)


def contrastive_loss(
    q: QuantizerOutput, relations: torch.Tensor, config: RQVAEConfig
) -> torch.Tensor:
    known = relations != UNKNOWN  # (B, B)
    if not bool(known.any()):
        return q.distances[0].new_zeros(())
    targets_by_level = relation_targets(config, relations.device)  # (L, 5)
    total = q.distances[0].new_zeros(())
    for level, dist in enumerate(q.distances):
        target = targets_by_level[level][relations]  # (B, B)
        positive = known & (target > 0)
        negative = known & (target <= 0)
        # Negatives outnumber positives ~100:1 in a batch: each group gets half the weight.
        n_pos, n_neg = int(positive.sum()), int(negative.sum())
        groups = (n_pos > 0) + (n_neg > 0)
        weight = (positive.float() / max(n_pos, 1) + negative.float() / max(n_neg, 1)) / groups
        p = soft_assignments(dist, config.temperature)  # (B, K)
        share = (p @ p.t()).clamp(1e-6, 1 - 1e-6)  # (B, B) P(share code at this level)
        level_loss = F.binary_cross_entropy(share, target, weight=weight, reduction="sum")
        total = total + config.level_weights[level] * level_loss
    return total


def similarity_loss(z: torch.Tensor, x: torch.Tensor, input_mean: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between latent cosine and mean-centred input cosine over the
    off-diagonal pairs of a batch: keeps the input's neighbourhoods in the latent."""
    if len(z) < 2:
        return z.new_zeros(())
    zn = F.normalize(z, dim=1)
    xn = F.normalize(x - input_mean, dim=1)
    diff = zn @ zn.t() - xn @ xn.t()
    off = ~torch.eye(len(z), dtype=torch.bool, device=z.device)
    return diff[off].pow(2).mean()


def neighbour_loss(
    q: QuantizerOutput,
    x: torch.Tensor,
    config: RQVAEConfig,
    partner_distances: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class-balanced BCE on P(share level-1 code) = <p_i, p_j> (soft assignments as in the
    contrastive term). Positives (target 1): batch pairs whose raw input cosine is >=
    neighbour_threshold, and each row with its sampled input-space nearest neighbour
    (`partner_distances`: (B, K) level-1 squared distances of the partners, row-aligned).
    Negatives (target 0): batch pairs with cosine < neighbour_threshold - neighbour_margin."""
    xn = F.normalize(x, dim=1)
    cos = xn @ xn.t()
    off = ~torch.eye(len(x), dtype=torch.bool, device=x.device)
    positive = off & (cos >= config.neighbour_threshold)
    negative = off & (cos < config.neighbour_threshold - config.neighbour_margin)
    p = soft_assignments(q.distances[0], config.temperature)
    share = (p @ p.t()).clamp(1e-6, 1 - 1e-6)
    pos_terms = [-torch.log(share[positive])]
    if partner_distances is not None:
        pp = soft_assignments(partner_distances, config.temperature)
        pos_terms.append(-torch.log((p * pp).sum(1).clamp(1e-6, 1 - 1e-6)))
    pos = torch.cat(pos_terms)
    neg = -torch.log1p(-share[negative])
    if len(pos) == 0 or len(neg) == 0:
        return q.distances[0].new_zeros(())
    return (pos.mean() + neg.mean()) / 2


def uniqueness_loss(
    q: QuantizerOutput,
    q_partner: QuantizerOutput,
    x: torch.Tensor,
    x_partner: torch.Tensor,
    config: RQVAEConfig,
) -> torch.Tensor:
    """Collisions: for (row, nearest-neighbour partner) pairs that share every level but the
    last and have different embeddings, -log(1 - P(share the last level)), averaged."""
    last = config.levels - 1
    same_prefix = (q.codes[:, :last] == q_partner.codes[:, :last]).all(1)
    distinct = (x != x_partner).any(1)
    mask = same_prefix & distinct
    if not bool(mask.any()):
        return q.distances[0].new_zeros(())
    p = soft_assignments(q.distances[last][mask], config.temperature)
    pp = soft_assignments(q_partner.distances[last][mask], config.temperature)
    share = (p * pp).sum(1).clamp(1e-6, 1 - 1e-6)
    return -torch.log1p(-share).mean()


@contextlib.contextmanager
def deterministic_algorithms():
    """Deterministic kernels inside the block, the caller's setting restored after. On CUDA the
    codebooks' gradient (an index_add) and k-means' sums otherwise add floats atomically in a varying
    order, so the same seed gave different codes from run to run (bench/reproducibility.py). An op
    with no deterministic kernel warns instead of failing (warn_only)."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])


def training_sample(n: int, config: RQVAEConfig) -> np.ndarray:
    """Sorted indices of the products `train_rqvae` trains on: all of them, or
    `config.max_train_products` drawn at random with `config.seed`."""
    return row_sample(n, config.max_train_products, np.random.default_rng(config.seed))


def train_rqvae(
    embeddings: np.ndarray,
    taxonomy: np.ndarray | None,
    config: RQVAEConfig,
    *,
    device="cpu",
    progress: ProgressFn | None = None,
    init_state: dict | None = None,
) -> TrainResult:
    x_all = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x_all.ndim != 2 or x_all.shape[1] != config.input_dim:
        raise ValueError(f"embeddings must be (N, {config.input_dim}), got {tuple(x_all.shape)}")
    if not np.isfinite(x_all).all():
        raise ValueError("embeddings contain NaN or infinite values")
    n = len(x_all)
    if n < 2:
        raise ValueError("need at least 2 embeddings to train")
    tax_all = validate_taxonomy(taxonomy, n) if taxonomy is not None else None
    subset = training_sample(n, config)
    if len(subset) < n:
        x_all = x_all[subset]
        tax_all = tax_all[subset] if tax_all is not None else None
        n = len(subset)
    use_contrastive = (
        config.contrastive_weight > 0 and tax_all is not None and bool((tax_all[:, 0] >= 0).any())
    )

    started = time.perf_counter()
    device = torch.device(device)
    fork_devices = [device] if device.type == "cuda" else []
    with exact_float32(), deterministic_algorithms(), torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)  # CPU generator: same draws on any device
        model = RQVAE(config).to(device)
        x = torch.from_numpy(x_all).to(device)
        tax = torch.from_numpy(tax_all).to(device) if tax_all is not None else None

        if init_state is not None:
            model.load_state_dict(init_state)
        else:
            sample = torch.randperm(n, generator=gen)[: config.kmeans_sample].to(device)
            model.init_from_data(x[sample])
            with torch.no_grad():
                z = model.latent(x[sample])
            model.quantizer.init_from_kmeans(z, iters=config.kmeans_iters, generator=gen)

        sampler = (
            HierarchicalBatchSampler(
                tax_all, config.batch_size, seed=config.seed,
                hierarchical_fraction=config.hierarchical_fraction,
                leaves_per_parent=config.leaves_per_parent,
                products_per_leaf=config.products_per_leaf,
            )
            if use_contrastive
            else RandomBatchSampler(n, config.batch_size, seed=config.seed)
        )
        codebook_ids = {id(p) for p in model.quantizer.codebooks}
        groups = [
            {"params": [p for p in model.parameters() if id(p) not in codebook_ids]},
            {"params": list(model.quantizer.codebooks), "lr": config.lr * config.codebook_lr_scale},
        ]
        optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
        total_steps = max(1, config.epochs * len(sampler))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(s, total_steps) / total_steps))
        )
        reseed_until = int(config.reseed_until_fraction * total_steps)
        knn = (
            input_neighbours(x, config.neighbour_k)
            if config.neighbour_weight > 0 and config.neighbour_k > 0 and n > 1
            else None
        )

        history: list[dict] = []
        step = 0
        model.train()
        for epoch in range(config.epochs):
            sums: dict[str, float] = {}
            used = [torch.zeros(k, dtype=torch.bool, device=device) for k in config.codebook_sizes]
            reseeded = [0] * config.levels
            batches = sampler.batches(epoch)
            for idx in batches:
                idx_t = torch.from_numpy(idx).to(device)
                xb = x[idx_t]
                z = model.latent(xb)
                q = model.quantizer(z)
                recon = model.decode(q.quantized)
                reconstruction = (recon - xb).pow(2).sum(1).mean()
                rq = q.codebook_loss + config.commitment_weight * q.commitment_loss
                if use_contrastive:
                    rows = config.contrastive_rows or len(idx)
                    contrastive = contrastive_loss(
                        q.head(rows), pair_relations(tax[idx_t[:rows]]), config
                    )
                else:
                    contrastive = reconstruction.new_zeros(())
                if config.similarity_weight > 0:
                    rows = config.contrastive_rows or len(idx)
                    similarity = similarity_loss(z[:rows], xb[:rows], model.input_mean)
                else:
                    similarity = reconstruction.new_zeros(())
                if config.neighbour_weight > 0:
                    rows = config.contrastive_rows or len(idx)
                    partner_distances = None
                    if knn is not None:
                        head = idx_t[:rows]
                        col = torch.randint(0, knn.shape[1], (len(head),), generator=gen)
                        partners = knn[head, col.to(device)]
                        q_partner = model.quantizer(model.latent(x[partners]))
                        partner_distances = q_partner.distances[0]
                    neighbour = neighbour_loss(q.head(rows), xb[:rows], config, partner_distances)
                else:
                    neighbour = reconstruction.new_zeros(())
                if config.unique_weight > 0 and knn is not None and config.levels > 1:
                    # Collisions are between the very nearest products: partners from the
                    # 2 nearest neighbours.
                    col = torch.randint(0, min(2, knn.shape[1]), (len(head),), generator=gen)
                    near = knn[head, col.to(device)]
                    q_near = model.quantizer(model.latent(x[near]))
                    unique = uniqueness_loss(q.head(rows), q_near, xb[:rows], x[near], config)
                else:
                    unique = reconstruction.new_zeros(())
                total = (
                    reconstruction + rq + config.contrastive_weight * contrastive
                    + config.similarity_weight * similarity + config.neighbour_weight * neighbour
                    + config.unique_weight * unique
                )
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                schedule.step()
                step += 1
                if step <= reseed_until and len(idx) > 1:
                    counts = model.quantizer.reseed_dead_codes(
                        q, threshold=config.dead_code_threshold, generator=gen, optimizer=optimizer
                    )
                    reseeded = [a + b for a, b in zip(reseeded, counts)]
                for level in range(config.levels):
                    used[level][q.codes[:, level]] = True
                terms = {
                    "reconstruction": reconstruction,
                    "rq": rq,
                    "codebook": q.codebook_loss,
                    "commitment": q.commitment_loss,
                    "contrastive": contrastive,
                    "similarity": similarity,
                    "neighbour": neighbour,
                    "unique": unique,
                    "total": total,
                }
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
            row = {"epoch": epoch + 1, **{k: v / len(batches) for k, v in sums.items()}}
            for level in range(config.levels):
                row[f"utilization_l{level + 1}"] = float(used[level].float().mean())
                row[f"reseeded_l{level + 1}"] = reseeded[level]
            row["lr"] = float(schedule.get_last_lr()[0])
            history.append(row)
            if progress is not None:
                progress(epoch + 1, config.epochs, row)
        model.eval()
    return TrainResult(
        model=model, config=config, history=history, seconds=time.perf_counter() - started, train_products=n
    )
