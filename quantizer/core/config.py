"""The RQ-VAE recipe as one dataclass: defaults are the documented recipe, saved with every run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class RQVAEConfig:
    # -- architecture
    input_dim: int = 384
    hidden_dims: tuple[int, ...] = (256, 128)
    # 64 (was 32): the PCA-initialised latent keeps more of the input's neighbourhoods.
    latent_dim: int = 64
    codebook_sizes: tuple[int, ...] = (256, 256, 256, 256)  # one per level; levels = len(...)
    # L2-normalise the encoder output before quantization; keeps level-1 cells comparable in
    # size, which helps utilization without splitting near-duplicates.
    normalize_latent: bool = True  # measured: higher Spearman / same-L1 than unnormalised
    # Linear skip paths initialised from PCA of the training data (encoder: x -> top
    # `latent_dim` principal directions; decoder: least-squares map back), with the MLP branches
    # added on top and their last layer zero-initialised. Training starts from a latent that
    # keeps the input's neighbourhoods, so the k-means-initialised quantizer starts at least as
    # good as residual k-means on the input and fine-tunes from there.
    linear_skip: bool = True

    # -- losses: L_total = L_reconstruction + L_rq + contrastive_weight * L_contrastive
    #    + similarity_weight * L_similarity + neighbour_weight * L_neighbour
    #    + unique_weight * L_unique (quantizer/core/training.py)
    # lambda; 0 = the lambda=0 baseline. 0.3, not the design's 0.01: here L_reconstruction is
    # a per-product squared L2 (~0.4 at the start) and L_contrastive a level-weighted mean BCE
    # (~1.5), so at 0.01 the term is ~4% of the loss and barely trains (it stays ~1.5 all
    # run). Dev split (BigBasket 50%, sample seed 100, 60 epochs, seeds 100/101), NMI L1 /
    # Spearman / collisions: lambda=0 0.418-0.425 / 0.698-0.710 / 14%; 0.1 0.422 / 0.684-0.689
    # / 13%; 0.3 0.441-0.448 / 0.666-0.672 / 19%; at 1.0 the geometry breaks (Spearman 0.55,
    # collisions 36%). 0.3 is the smallest weight whose codes follow the taxonomy measurably
    # better than lambda=0 (docs/semantic-ids.md), at some cost in Spearman and collisions.
    contrastive_weight: float = 0.3
    level_weights: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)  # coarse levels weigh more
    # Pairwise similarity preservation: MSE between latent cosine and (mean-centred) input
    # cosine over the pairs of a batch's first `contrastive_rows` rows; 0 = off.
    similarity_weight: float = 0.0
    # Near-duplicate term: within a batch's first `contrastive_rows` rows, pairs with input
    # cosine >= neighbour_threshold should share their level-1 code, pairs below
    # neighbour_threshold - neighbour_margin should not (class-balanced BCE on the soft
    # level-1 assignments, like the contrastive term); 0 = off. Needs no taxonomy. With
    # neighbour_k > 0, each row is also paired with one of its neighbour_k nearest inputs
    # (exact cosine kNN computed once per run) as a positive.
    neighbour_weight: float = 0.5
    neighbour_k: int = 10
    # Collisions: a (row, kNN partner) pair with distinct embeddings that shares every level but
    # the last is pushed apart at the last level (-log(1 - P(share))); needs neighbour_k > 0.
    # Off by default: on BigBasket (full, seed 0) weight 1 took collisions ~19% -> 14% but
    # same-L1 for cos >= 0.9 pairs ~0.985 -> 0.974 and NMI L1 ~0.427 -> 0.411 (below lambda=0).
    unique_weight: float = 0.0
    neighbour_threshold: float = 0.8
    neighbour_margin: float = 0.3
    commitment_weight: float = 0.25  # beta in ||sg(e) - r||^2 * beta + ||e - sg(r)||^2
    temperature: float = 0.1  # softmax(-distance / T) for soft code assignments, per level
    # Relatedness graded from the tree (pairs where both products are categorized).
    same_leaf_target: float = 1.0
    sibling_target: float = 0.5  # same parent, different leaf
    cousin_target: float = 0.0  # share an ancestor below the root, but not the parent
    unrelated_target: float = 0.0  # no shared ancestor below the root
    # Target at level l = min(1, relatedness * level_target_scales[l]): at level 1 siblings
    # and same-leaf pairs should both share the code; at level 4 only same-leaf pairs get a
    # moderate target (sharing every level would be a collision).
    level_target_scales: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25)

    # -- optimisation
    # 60 (was 30): dev split, 30 -> 60 epochs: Spearman 0.672 -> 0.684, same-L1 0.976 -> 0.983,
    # NMI L1 0.404 -> 0.422; 90 epochs added little more (0.693 / 0.984 / 0.431) and would not
    # fit the 10-minute CPU budget.
    epochs: int = 60
    batch_size: int = 1024
    lr: float = 2e-3
    codebook_lr_scale: float = 1.0  # codebook learning rate = lr * this (gradient codebooks)
    weight_decay: float = 0.0
    seed: int = 0
    # Training reads at most this many products, a random sample drawn with `seed` (every product is
    # still encoded): the cost of an epoch and of the neighbour term's exact kNN grow with it, and the
    # codebooks need far fewer products than a catalog of millions. 0 = all.
    max_train_products: int = 100_000

    # -- codebook upkeep
    kmeans_iters: int = 20
    kmeans_sample: int = 16384  # residuals used to k-means-initialise each codebook
    dead_code_threshold: int = 20  # steps without a hit before a codeword is re-seeded
    # Re-seed until the end (was 0.9): the taxonomy and neighbour terms keep merging level-1
    # cells, and with 0.9 level-1 utilization ended at 0.91-0.95 on BigBasket. A re-seeded
    # codeword sits on a real residual, so it keeps at least that product.
    reseed_until_fraction: float = 1.0

    # -- hierarchical batches
    hierarchical_fraction: float = 0.5  # share of a batch drawn from children of parent nodes
    # The contrastive term looks at pairs among the first `contrastive_rows` rows of a batch
    # (the hierarchical part comes first), to keep its (B, B, K) cost bounded; 0 = all rows.
    contrastive_rows: int = 512
    leaves_per_parent: int = 4
    products_per_leaf: int = 8

    # -- assignment
    # Last level per (L-1)-level prefix: a product that would share its full code with a different
    # product takes the nearest codeword free in its prefix (quantizer/core/spread.py). Off: plain
    # nearest codeword at every level (runs saved before this field load with it off).
    spread_last_level: bool = True
    spread_candidates: int = 32  # nearest last-level codewords a contested product may take
    # Level 1 per near-duplicate group: products joined by cosine >= this (each to its
    # near_duplicate_k nearest, connected components) take one level-1 code, the codeword nearest
    # the group's mean latent (quantizer/core/neighbours.py); 0 = off (runs saved before load off).
    # 0.9 is the design's near-duplicate; on BigBasket 0.8 chains 2,281 products into one group,
    # 0.85 110, 0.9 at most 59.
    near_duplicate_threshold: float = 0.9
    near_duplicate_k: int = 10
    # A group larger than this many distinct products is split at a higher threshold (0 = no limit;
    # runs saved before load with 0): Instacart's attribute records chain 3,676 into one group at 0.9.
    near_duplicate_max_group: int = 100

    extra: dict = field(default_factory=dict)  # free-form notes kept with the run

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)

    def __post_init__(self) -> None:
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        self.codebook_sizes = tuple(int(k) for k in self.codebook_sizes)
        self.level_weights = tuple(float(w) for w in self.level_weights)
        self.level_target_scales = tuple(float(s) for s in self.level_target_scales)
        if not self.codebook_sizes:
            raise ValueError("codebook_sizes must name at least one level")
        if any(k < 2 for k in self.codebook_sizes):
            raise ValueError(f"every codebook needs at least 2 codewords, got {self.codebook_sizes}")
        for name in ("level_weights", "level_target_scales"):
            if len(getattr(self, name)) != self.levels:
                raise ValueError(
                    f"{name} has {len(getattr(self, name))} entries but there are "
                    f"{self.levels} levels (codebook_sizes={self.codebook_sizes})"
                )
        if 0 < self.max_train_products < 2:
            raise ValueError("max_train_products must be 0 (all) or at least 2")
        if not 0.0 <= self.hierarchical_fraction <= 1.0:
            raise ValueError("hierarchical_fraction must lie in [0, 1]")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RQVAEConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown RQVAEConfig fields: {sorted(unknown)}")
        return cls(**d)
