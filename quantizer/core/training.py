"""The training loop: batches -> `losses.loss_terms` -> L_total -> AdamW, with dead-code re-seeding.

Every loss term is reported separately, per epoch, in the history (`EpochLog`).

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

from .config import RQVAEConfig, TrainingConfig
from .losses import loss_terms, loss_weights, relation_targets, total_loss
from .neighbours import NEAR_DUPLICATE_K, distinct_rows, input_neighbours, search_blocks
from .spread import embedding_units
from .rqvae import RQVAE, exact_float32
from .sampling import HierarchicalBatchSampler, RandomBatchSampler, row_sample, validate_taxonomy

# Called after each epoch with (epoch, epochs, the epoch's history row): the loss terms and the learning rate.
# (A progress callback elsewhere is progress(done, total=1.0, message=None); this hook carries the losses.)
EpochHook = Callable[[int, int, dict], None]

# The history's figures per epoch, in order: every loss term (`losses.loss_terms`) and L_total.
TERMS = ("reconstruction", "rq", "codebook", "commitment", "contrastive", "similarity", "neighbour", "unique", "total")
# Never varied, so not in the recipe: AdamW's weight decay; the residuals that k-means-initialise each
# codebook; the share of the steps during which dead codewords are re-seeded (to the end: was 0.9, but
# the taxonomy and neighbour terms keep merging level-1 cells, and with 0.9 level-1 utilization ended at
# 0.91-0.95 on BigBasket; a re-seeded codeword sits on a real residual, so it keeps at least that
# product). The hierarchical batches' shape is the sampler's defaults (`HierarchicalBatchSampler`).
WEIGHT_DECAY = 0.0
KMEANS_SAMPLE = 16384
RESEED_UNTIL_FRACTION = 1.0
# CUDA: eager steps of each batch shape before its step is captured as a CUDA graph (lazily made
# state: the optimizer's moments, cuBLAS workspaces).
GRAPH_WARMUP_STEPS = 3


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


def training_sample(n: int, config: TrainingConfig) -> np.ndarray:
    """Sorted indices of the products `train_rqvae` trains on: all of them, or
    `config.max_train_products` drawn at random with `config.seed`."""
    return row_sample(n, config.max_train_products, np.random.default_rng(config.seed))


def neighbour_search_k(config: RQVAEConfig, n: int) -> int:
    """The k of the neighbour term's search over n training rows, 0 where the term is off."""
    loss = config.loss
    return loss.neighbour_k if loss.neighbour_weight > 0 and loss.neighbour_k > 0 and n > 1 else 0


@dataclass(frozen=True)
class NeighbourSearch:
    """A nearest-neighbour search a run makes (`neighbour_searches`): among `rows` (indices into its vectors),
    each row's k nearest, exact, in `search_blocks(len(rows))` of query rows that may run apart (`nearest_neighbours(
    rows=...)`)."""

    rows: np.ndarray
    k: int


def neighbour_searches(vectors: np.ndarray, config: RQVAEConfig) -> dict[str, NeighbourSearch]:
    """The exact searches that training an RQ-VAE on `vectors` and coding them make, by name: "train" (the
    neighbour term, over the `training_sample`: `train_rqvae(neighbours=)`) and "groups" (the near-duplicate
    groups, over the `distinct_rows`: `encode(found=)`). A search over more rows than an exact search takes
    (`search_blocks` empty) is left out: it probes cells all at once, in the fit."""
    searches = {}
    train_rows = training_sample(len(vectors), config.training)
    if k := neighbour_search_k(config, len(train_rows)):
        searches["train"] = NeighbourSearch(train_rows, k)
    if config.assignment.near_duplicate_threshold > 0 and len(vectors):
        distinct = distinct_rows(embedding_units(np.ascontiguousarray(vectors, np.float32)))
        if len(distinct) >= 2:
            searches["groups"] = NeighbourSearch(distinct, NEAR_DUPLICATE_K)
    return {name: search for name, search in searches.items() if search_blocks(len(search.rows))}


def lr_factor(step: int, total_steps: int) -> float:
    """The learning rate after `step` steps, as a share of the configured one: cosine from 1 to 0.1."""
    return 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(step, total_steps) / total_steps))


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


@dataclass
class TrainResult:
    model: RQVAE
    config: RQVAEConfig
    history: list[dict] = field(default_factory=list)  # one dict per epoch, every loss term
    seconds: float = 0.0
    train_products: int = 0  # rows trained on (`training_sample`)


def training_inputs(
    embeddings: np.ndarray, taxonomy: np.ndarray | None, config: RQVAEConfig
) -> tuple[np.ndarray, np.ndarray | None]:
    """The (n, D) float32 embeddings and (n, T) taxonomy ids that `train_rqvae` trains on: validated,
    cut to the `training_sample`."""
    x_all = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x_all.ndim != 2 or x_all.shape[1] != config.model.input_dim:
        raise ValueError(f"embeddings must be (N, {config.model.input_dim}), got {tuple(x_all.shape)}")
    if not np.isfinite(x_all).all():
        raise ValueError("embeddings contain NaN or infinite values")
    n = len(x_all)
    if n < 2:
        raise ValueError("need at least 2 embeddings to train")
    tax_all = validate_taxonomy(taxonomy, n) if taxonomy is not None else None
    subset = training_sample(n, config.training)
    if len(subset) < n:
        x_all = x_all[subset]
        tax_all = tax_all[subset] if tax_all is not None else None
    return x_all, tax_all


def initial_model(config: RQVAEConfig, x: torch.Tensor, *, generator: torch.Generator,
                  init_state: dict | None) -> RQVAE:
    """A fresh model (drawn from torch's global generator), warm-started from `init_state`, or with its
    skip paths fitted to `x` and its codebooks k-means-initialised on a sample drawn with `generator`."""
    model = RQVAE(config).to(x.device)
    if init_state is not None:
        model.load_state_dict(init_state)
        return model
    sample = torch.randperm(len(x), generator=generator)[:KMEANS_SAMPLE].to(x.device)
    model.init_from_data(x[sample])
    with torch.no_grad():
        z = model.latent(x[sample])
    model.quantizer.init_from_kmeans(z, iters=config.training.kmeans_iters, generator=generator)
    return model


def batch_sampler(tax_all: np.ndarray | None, n: int, config: TrainingConfig):
    """Hierarchical batches with a taxonomy (the contrastive term), random ones without."""
    if tax_all is None:
        return RandomBatchSampler(n, config.batch_size, seed=config.seed)
    return HierarchicalBatchSampler(tax_all, config.batch_size, seed=config.seed)


def make_optimizer(model: RQVAE, config: TrainingConfig, *, capturable: bool) -> tuple[torch.optim.AdamW, list[float]]:
    """AdamW over two groups, the codebooks at `codebook_lr_scale` times the rest's rate, and their base
    rates. Capturable (in a CUDA graph): the rates are device tensors that the captured step reads."""
    device = next(model.parameters()).device
    codebook_ids = {id(p) for p in model.quantizer.codebooks}
    base_lrs = [config.lr, config.lr * config.codebook_lr_scale]
    lrs = [torch.tensor(lr, device=device) for lr in base_lrs] if capturable else base_lrs
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in codebook_ids], "lr": lrs[0]},
        {"params": list(model.quantizer.codebooks), "lr": lrs[1]},
    ]
    return torch.optim.AdamW(groups, weight_decay=WEIGHT_DECAY, capturable=capturable), base_lrs


def set_lr(optimizer: torch.optim.Optimizer, base_lrs: list[float], factor: float) -> float:
    """Each group's rate = its base rate * factor (in place where it is a device tensor); the first's."""
    for group, base in zip(optimizer.param_groups, base_lrs):
        lr = base * factor
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr
    return float(base_lrs[0] * factor)


class EpochLog:
    """An epoch's figures, added up on the device by every step (no host read): the sum of each of
    `TERMS`, the codewords chosen and those re-seeded. `row` reads them once, at the end of the epoch."""

    def __init__(self, codebook_sizes: tuple[int, ...], device):
        self.sums = torch.zeros(len(TERMS), dtype=torch.float64, device=device)  # float64, as the host summed
        self.used = [torch.zeros(k, dtype=torch.bool, device=device) for k in codebook_sizes]
        self.reseeded = torch.zeros(len(codebook_sizes), dtype=torch.long, device=device)
        self.off = torch.zeros((), device=device)  # the figure of a term that is off

    def reset(self) -> None:
        for buffer in (self.sums, self.reseeded, *self.used):
            buffer.zero_()

    @torch.no_grad()
    def add(self, terms: dict[str, torch.Tensor], codes: torch.Tensor) -> None:
        """One step: its loss terms (by name, `TERMS`) and its (B, L) codes."""
        self.sums.add_(torch.stack([terms.get(k, self.off).detach() for k in TERMS]).double())
        for level, used in enumerate(self.used):
            used.index_fill_(0, codes[:, level], True)

    def row(self, epoch: int, steps: int, lr: float) -> dict:
        row = {"epoch": epoch, **{k: v / steps for k, v in zip(TERMS, self.sums.tolist())}}
        for level, count in enumerate(self.reseeded.tolist()):
            row[f"utilization_l{level + 1}"] = float(self.used[level].float().mean())
            row[f"reseeded_l{level + 1}"] = count
        row["lr"] = lr
        return row


def train_rqvae(
    embeddings: np.ndarray,
    taxonomy: np.ndarray | None,
    config: RQVAEConfig,
    *,
    device="cpu",
    on_epoch: EpochHook | None = None,
    init_state: dict | None = None,
    neighbours: np.ndarray | None = None,
) -> TrainResult:
    """The RQ-VAE trained on the `training_sample` of the embeddings. `neighbours`: the (n, k) indices
    `nearest_neighbours` gives the sample's rows with k = `neighbour_search_k`, searched already (a fanned-out
    search's blocks); else searched here."""
    x_all, tax_all = training_inputs(embeddings, taxonomy, config)
    n = len(x_all)
    train, loss = config.training, config.loss
    use_contrastive = loss.contrastive_weight > 0 and tax_all is not None and bool((tax_all[:, 0] >= 0).any())

    started = time.perf_counter()
    device = torch.device(device)
    cuda = device.type == "cuda"
    fork_devices = [device] if cuda else []

    def to_device(t: torch.Tensor) -> torch.Tensor:  # from pinned memory: the host does not wait
        return t.pin_memory().to(device, non_blocking=True) if cuda else t

    with exact_float32(), deterministic_algorithms(), torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(train.seed)
        gen = torch.Generator().manual_seed(train.seed)  # CPU generator: same draws on any device
        x = torch.from_numpy(x_all).to(device)
        model = initial_model(config, x, generator=gen, init_state=init_state)
        tax = torch.from_numpy(tax_all).to(device) if use_contrastive else None
        targets = relation_targets(loss, device)
        sampler = batch_sampler(tax_all if use_contrastive else None, n, train)
        optimizer, base_lrs = make_optimizer(model, train, capturable=cuda)
        total_steps = max(1, train.epochs * len(sampler))
        last_lr = set_lr(optimizer, base_lrs, lr_factor(0, total_steps))
        reseed_until = int(RESEED_UNTIL_FRACTION * total_steps)
        knn = (
            input_neighbours(x, loss.neighbour_k, found=None if neighbours is None else torch.as_tensor(neighbours))
            if neighbour_search_k(config, n)
            else None
        )
        partnered = knn is not None
        unique = loss.unique_weight > 0 and knn is not None and config.model.levels > 1
        weights = loss_weights(loss)
        log = EpochLog(config.model.codebook_sizes, device)

        def step_fn(idx, partner_cols, near_cols, *, reseed: bool) -> None:
            terms, q = loss_terms(
                model, loss, x, idx, tax=tax, targets=targets, knn=knn,
                partner_cols=partner_cols, near_cols=near_cols,
            )
            total = total_loss(terms, weights)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            log.add({**terms, "total": total}, q.codes)
            if reseed:
                # The seeds are drawn with the device's default generator (seeded above).
                log.reseeded.add_(model.quantizer.reseed_dead_codes(
                    q, threshold=train.dead_code_threshold, optimizer=optimizer
                ))

        run = CudaGraphSteps(step_fn) if cuda else step_fn

        history: list[dict] = []
        step = 0
        model.train()
        batches = sampler.batches(0) if train.epochs else []
        for epoch in range(train.epochs):
            rows_all = to_device(torch.from_numpy(np.concatenate(batches)))  # the epoch's batches, one copy
            bounds = np.cumsum([0] + [len(b) for b in batches]).tolist()
            upcoming = sampler.iter_batches(epoch + 1) if epoch + 1 < train.epochs else iter(())
            following: list[np.ndarray] = []
            log.reset()
            for b in range(len(batches)):
                idx = rows_all[bounds[b] : bounds[b + 1]]
                head = min(len(idx), loss.contrastive_rows or len(idx))
                partner_cols = (
                    to_device(torch.randint(0, knn.shape[1], (head,), generator=gen)) if partnered else None
                )
                # Collisions are between the very nearest products: partners from the 2 nearest.
                near_cols = (
                    to_device(torch.randint(0, min(2, knn.shape[1]), (head,), generator=gen)) if unique else None
                )
                run(idx, partner_cols, near_cols, reseed=step + 1 <= reseed_until and len(idx) > 1)
                step += 1
                last_lr = set_lr(optimizer, base_lrs, lr_factor(step, total_steps))
                following.extend(itertools.islice(upcoming, 1))  # while the GPU runs the step
            following.extend(upcoming)
            row = log.row(epoch + 1, len(batches), last_lr)
            history.append(row)
            if on_epoch is not None:
                on_epoch(epoch + 1, train.epochs, row)
            batches = following
        optimizer.zero_grad(set_to_none=True)  # (on CUDA the gradients live in the graphs' memory)
        model.eval()
    return TrainResult(
        model=model, config=config, history=history, seconds=time.perf_counter() - started, train_products=n
    )
