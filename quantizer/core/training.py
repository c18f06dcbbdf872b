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

A training step (`loss_terms`, backward, optimizer, dead-code re-seeding) never reads the GPU from
the host: the losses use masked sums instead of boolean indexing (same gradient), re-seeding has fixed
shapes, and the per-epoch figures add up on the device. On CUDA the step is captured once as a CUDA
graph and replayed (`CudaGraphSteps`), and the sampler draws the next epoch's batches while the GPU
runs this one's (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import defaultdict
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
# The loss terms `loss_terms` returns, in the history's order.
TERMS = ("reconstruction", "rq", "codebook", "commitment", "contrastive", "similarity", "neighbour", "unique", "total")
# CUDA: eager steps of each batch shape before its step is captured as a CUDA graph (lazily made
# state: the optimizer's moments, cuBLAS workspaces).
GRAPH_WARMUP_STEPS = 3


@dataclass
class TrainResult:
    model: RQVAE
    config: RQVAEConfig
    history: list[dict] = field(default_factory=list)  # one dict per epoch, every loss term
    seconds: float = 0.0
    train_products: int = 0  # rows trained on (`training_sample`)


def _leading_true(mask: torch.Tensor) -> torch.Tensor:
    """(..., T) bool -> (...) int64: how many leading entries along the last dim are True. A loop
    over the few taxonomy levels: cumprod's scan over a last dim of 3 took 1.8 ms of a 4.9 ms
    training step on an H200."""
    run = mask[..., 0]
    count = run.long()
    for t in range(1, mask.shape[-1]):
        run = run & mask[..., t]
        count = count + run
    return count


def pair_relations(tax: torch.Tensor) -> torch.Tensor:
    """(B, T) taxonomy ids -> (B, B) relation codes (SAME_LEAF ... UNKNOWN).

    shared = number of leading taxonomy levels two products have in common; depth = level of
    each product's leaf. Same leaf: shared == both depths. Sibling: they share the parent of
    the deeper leaf. Cousin: some ancestor below the root. UNKNOWN: either is uncategorized
    (or the diagonal)."""
    present = tax >= 0  # (B, T)
    depth = _leading_true(present)  # (B,)
    equal = (tax[:, None, :] == tax[None, :, :]) & present[:, None, :] & present[None, :, :]
    shared = _leading_true(equal)  # (B, B)
    di, dj = depth[:, None], depth[None, :]
    deeper = torch.maximum(di, dj)
    # torch.where, not rel[mask] = ...: a boolean-mask assignment can read the mask on the host.
    rel = torch.where(shared >= 1, COUSIN, UNRELATED)
    rel = torch.where((shared >= 1) & (shared == deeper - 1), SIBLING, rel)
    rel = torch.where((shared == di) & (shared == dj) & (shared >= 1), SAME_LEAF, rel)
    rel = torch.where((di == 0) | (dj == 0), UNKNOWN, rel)
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
    q: QuantizerOutput, relations: torch.Tensor, config: RQVAEConfig, targets: torch.Tensor | None = None
) -> torch.Tensor:
    """targets: `relation_targets(config, device)`, when the caller keeps them (one copy a run)."""
    known = relations != UNKNOWN  # (B, B)
    targets_by_level = relation_targets(config, relations.device) if targets is None else targets  # (L, 5)
    total = q.distances[0].new_zeros(())
    for level, dist in enumerate(q.distances):
        target = targets_by_level[level][relations]  # (B, B)
        positive = known & (target > 0)
        negative = known & (target <= 0)
        # Negatives outnumber positives ~100:1 in a batch: each group gets half the weight. Counts
        # stay on the device (no host sync); with no known pair every weight is 0.
        n_pos, n_neg = positive.sum(), negative.sum()
        groups = ((n_pos > 0).long() + (n_neg > 0).long()).clamp_min(1)
        weight = (positive.float() / n_pos.clamp_min(1) + negative.float() / n_neg.clamp_min(1)) / groups
        p = soft_assignments(dist, config.temperature)  # (B, K)
        share = (p @ p.t()).clamp(1e-6, 1 - 1e-6)  # (B, B) P(share code at this level)
        level_loss = F.binary_cross_entropy(share, target, weight=weight, reduction="sum")
        total = total + config.level_weights[level] * level_loss
    return total


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean of `values` where `mask`, count): `values[mask].mean()` without the host sync that
    boolean indexing needs; the gradient is the same. An empty mask gives (0, 0)."""
    count = mask.sum()
    return (values * mask).sum() / count.clamp_min(1), count


def similarity_loss(z: torch.Tensor, x: torch.Tensor, input_mean: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between latent cosine and mean-centred input cosine over the
    off-diagonal pairs of a batch: keeps the input's neighbourhoods in the latent."""
    if len(z) < 2:
        return z.new_zeros(())
    zn = F.normalize(z, dim=1)
    xn = F.normalize(x - input_mean, dim=1)
    diff = zn @ zn.t() - xn @ xn.t()
    off = ~torch.eye(len(z), dtype=torch.bool, device=z.device)
    return _masked_mean(diff.pow(2), off)[0]


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
    Negatives (target 0): batch pairs with cosine < neighbour_threshold - neighbour_margin.
    0 when either group is empty."""
    xn = F.normalize(x, dim=1)
    cos = xn @ xn.t()
    off = ~torch.eye(len(x), dtype=torch.bool, device=x.device)
    positive = off & (cos >= config.neighbour_threshold)
    negative = off & (cos < config.neighbour_threshold - config.neighbour_margin)
    p = soft_assignments(q.distances[0], config.temperature)
    share = (p @ p.t()).clamp(1e-6, 1 - 1e-6)
    # Masked sums, not share[positive]: no host sync; the gradient is that of the gathered means.
    n_pos = positive.sum()
    pos_sum = (-torch.log(share) * positive).sum()
    if partner_distances is not None:
        pp = soft_assignments(partner_distances, config.temperature)
        pos_sum = pos_sum + (-torch.log((p * pp).sum(1).clamp(1e-6, 1 - 1e-6))).sum()
        n_pos = n_pos + len(pp)
    neg, n_neg = _masked_mean(-torch.log1p(-share), negative)
    loss = (pos_sum / n_pos.clamp_min(1) + neg) / 2
    return torch.where((n_pos > 0) & (n_neg > 0), loss, 0.0)


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
    p = soft_assignments(q.distances[last], config.temperature)
    pp = soft_assignments(q_partner.distances[last], config.temperature)
    share = (p * pp).sum(1).clamp(1e-6, 1 - 1e-6)
    return _masked_mean(-torch.log1p(-share), mask)[0]


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


def lr_factor(step: int, total_steps: int) -> float:
    """The learning rate after `step` steps, as a share of the configured one: cosine from 1 to 0.1."""
    return 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(step, total_steps) / total_steps))


def loss_terms(
    model: RQVAE,
    config: RQVAEConfig,
    x: torch.Tensor,
    idx: torch.Tensor,
    *,
    tax: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    knn: torch.Tensor | None = None,
    partner_cols: torch.Tensor | None = None,
    near_cols: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], QuantizerOutput]:
    """Every loss term (`TERMS`) of the batch x[idx] (B,), and its quantizer output. tax: (N, T)
    taxonomy for the contrastive term (None: off). knn: (N, k) input neighbours; partner_cols /
    near_cols: (rows,) the column of each head row's partner for the neighbour / uniqueness term
    (None: without partners / off). No host sync: it runs inside a CUDA graph."""
    xb = x[idx]
    z = model.latent(xb)
    q = model.quantizer(z)
    recon = model.decode(q.quantized)
    reconstruction = (recon - xb).pow(2).sum(1).mean()
    zero = reconstruction.new_zeros(())
    rows = config.contrastive_rows or len(idx)
    head = idx[:rows]
    rq = q.codebook_loss + config.commitment_weight * q.commitment_loss
    contrastive = (
        contrastive_loss(q.head(rows), pair_relations(tax[head]), config, targets) if tax is not None else zero
    )
    similarity = (
        similarity_loss(z[:rows], xb[:rows], model.input_mean) if config.similarity_weight > 0 else zero
    )
    neighbour = zero
    if config.neighbour_weight > 0:
        partner_distances = None
        if partner_cols is not None:
            q_partner = model.quantizer(model.latent(x[knn[head, partner_cols]]))
            partner_distances = q_partner.distances[0]
        neighbour = neighbour_loss(q.head(rows), xb[:rows], config, partner_distances)
    unique = zero
    if near_cols is not None:
        near = knn[head, near_cols]
        q_near = model.quantizer(model.latent(x[near]))
        unique = uniqueness_loss(q.head(rows), q_near, xb[:rows], x[near], config)
    total = (
        reconstruction + rq + config.contrastive_weight * contrastive
        + config.similarity_weight * similarity + config.neighbour_weight * neighbour
        + config.unique_weight * unique
    )
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
    return terms, q


class CudaGraphSteps:
    """Runs `step(*tensors, **flags)` on CUDA, one launch a step: eagerly (on a side stream) for the
    first `GRAPH_WARMUP_STEPS` calls with given input shapes and flags, then captured once as a CUDA
    graph that every later call with those shapes and flags replays, its inputs copied into the
    graph's own. A training step is hundreds of small kernels; launched one by one from Python, the
    GPU waited on the launches. `step` must not read the GPU from the host, and its outputs are
    overwritten by the next replay."""

    def __init__(self, step: Callable):
        self.step = step
        self.side = torch.cuda.Stream()
        self.calls: dict = defaultdict(int)
        self.graphs: dict = {}

    def __call__(self, *inputs: torch.Tensor | None, **flags):
        key = (tuple(None if t is None else tuple(t.shape) for t in inputs), tuple(sorted(flags.items())))
        if key in self.graphs:
            graph, buffers, out = self.graphs[key]
            for buffer, t in zip(buffers, inputs):
                if buffer is not None:
                    buffer.copy_(t)
            graph.replay()
            return out
        self.calls[key] += 1
        if self.calls[key] <= GRAPH_WARMUP_STEPS:
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                out = self.step(*inputs, **flags)
            torch.cuda.current_stream().wait_stream(self.side)
            return out
        buffers = [None if t is None else t.clone() for t in inputs]
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self.step(*buffers, **flags)
        self.graphs[key] = (graph, buffers, out)
        graph.replay()
        return out


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
    cuda = device.type == "cuda"
    fork_devices = [device] if cuda else []

    def to_device(t: torch.Tensor) -> torch.Tensor:  # from pinned memory: the host does not wait
        return t.pin_memory().to(device, non_blocking=True) if cuda else t

    with exact_float32(), deterministic_algorithms(), torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)  # CPU generator: same draws on any device
        model = RQVAE(config).to(device)
        x = torch.from_numpy(x_all).to(device)
        tax = torch.from_numpy(tax_all).to(device) if use_contrastive else None
        targets = relation_targets(config, device)

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
        base_lrs = [config.lr, config.lr * config.codebook_lr_scale]
        # On CUDA the learning rates are tensors that the captured optimizer step reads.
        lrs = [torch.tensor(lr, device=device) for lr in base_lrs] if cuda else base_lrs
        groups = [
            {"params": [p for p in model.parameters() if id(p) not in codebook_ids], "lr": lrs[0]},
            {"params": list(model.quantizer.codebooks), "lr": lrs[1]},
        ]
        optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay, capturable=cuda)
        total_steps = max(1, config.epochs * len(sampler))

        def set_lr(step: int) -> float:
            for group, base in zip(optimizer.param_groups, base_lrs):
                lr = base * lr_factor(step, total_steps)
                if cuda:
                    group["lr"].fill_(lr)
                else:
                    group["lr"] = lr
            return float(base_lrs[0] * lr_factor(step, total_steps))

        last_lr = set_lr(0)
        reseed_until = int(config.reseed_until_fraction * total_steps)
        knn = (
            input_neighbours(x, config.neighbour_k)
            if config.neighbour_weight > 0 and config.neighbour_k > 0 and n > 1
            else None
        )
        partnered = knn is not None
        unique = config.unique_weight > 0 and knn is not None and config.levels > 1
        # Per epoch, on the device: loss sums (float64, as the host summed them), codewords used and
        # codewords re-seeded.
        sums = torch.zeros(len(TERMS), dtype=torch.float64, device=device)
        used = [torch.zeros(k, dtype=torch.bool, device=device) for k in config.codebook_sizes]
        reseeded = torch.zeros(config.levels, dtype=torch.long, device=device)

        def step_fn(idx, partner_cols, near_cols, *, reseed: bool) -> None:
            terms, q = loss_terms(
                model, config, x, idx, tax=tax, targets=targets, knn=knn,
                partner_cols=partner_cols, near_cols=near_cols,
            )
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()
            with torch.no_grad():
                sums.add_(torch.stack([terms[k].detach() for k in TERMS]).double())
                for level, u in enumerate(used):
                    u.index_fill_(0, q.codes[:, level], True)
                if reseed:
                    # The seeds are drawn with the device's default generator (seeded above).
                    reseeded.add_(model.quantizer.reseed_dead_codes(
                        q, threshold=config.dead_code_threshold, optimizer=optimizer
                    ))

        run = CudaGraphSteps(step_fn) if cuda else step_fn

        history: list[dict] = []
        step = 0
        model.train()
        batches = sampler.batches(0) if config.epochs else []
        for epoch in range(config.epochs):
            rows_all = to_device(torch.from_numpy(np.concatenate(batches)))  # the epoch's batches, one copy
            bounds = np.cumsum([0] + [len(b) for b in batches]).tolist()
            upcoming = sampler.iter_batches(epoch + 1) if epoch + 1 < config.epochs else iter(())
            following: list[np.ndarray] = []
            for buffer in (sums, reseeded, *used):
                buffer.zero_()
            for b in range(len(batches)):
                idx = rows_all[bounds[b] : bounds[b + 1]]
                head = min(len(idx), config.contrastive_rows or len(idx))
                partner_cols = (
                    to_device(torch.randint(0, knn.shape[1], (head,), generator=gen)) if partnered else None
                )
                # Collisions are between the very nearest products: partners from the 2 nearest.
                near_cols = (
                    to_device(torch.randint(0, min(2, knn.shape[1]), (head,), generator=gen)) if unique else None
                )
                run(idx, partner_cols, near_cols, reseed=step + 1 <= reseed_until and len(idx) > 1)
                step += 1
                last_lr = set_lr(step)
                following.extend(itertools.islice(upcoming, 1))  # while the GPU runs the step
            following.extend(upcoming)
            row = {"epoch": epoch + 1, **{k: v / len(batches) for k, v in zip(TERMS, sums.tolist())}}
            for level, count in enumerate(reseeded.tolist()):
                row[f"utilization_l{level + 1}"] = float(used[level].float().mean())
                row[f"reseeded_l{level + 1}"] = count
            row["lr"] = last_lr
            history.append(row)
            if progress is not None:
                progress(epoch + 1, config.epochs, row)
            batches = following
        optimizer.zero_grad(set_to_none=True)  # (on CUDA the gradients live in the graphs' memory)
        model.eval()
    return TrainResult(
        model=model, config=config, history=history, seconds=time.perf_counter() - started, train_products=n
    )
