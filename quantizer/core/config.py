"""The RQ-VAE recipe: what is varied, grouped by what it shapes, composed in one `RQVAEConfig`.

- `ModelConfig`: the architecture (`rqvae.RQVAE`).
- `LossConfig`: the loss terms' weights and shapes (`losses`).
- `TrainingConfig`: optimisation, sampling and codebook upkeep (`training.train_rqvae`).
- `AssignmentConfig`: how a trained model's codes are chosen (`assignment.encode`).

The defaults are the documented recipe. A value never varied is a named constant beside the code
that uses it (`losses.COMMITMENT_WEIGHT`, `losses.RELATEDNESS`, `training.WEIGHT_DECAY`, ...).

Stored form: one flat dict. Every field name is unique across the groups, so runs
(`QuantizerRun.config`), checkpoints, `SEMID_QUANTIZER_OVERRIDES`, the API's and the commands'
overrides and the bench scripts' `--config` all name a field by its own name
(`{"latent_dim": 16, "epochs": 3}`). `to_dict` writes that form and `from_dict` reads it, including the
dicts stored before the recipe was grouped (`RETIRED_FIELDS`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class ModelConfig:
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

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)

    def __post_init__(self) -> None:
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        self.codebook_sizes = tuple(int(k) for k in self.codebook_sizes)
        if not self.codebook_sizes:
            raise ValueError("codebook_sizes must name at least one level")
        if any(k < 2 for k in self.codebook_sizes):
            raise ValueError(f"every codebook needs at least 2 codewords, got {self.codebook_sizes}")


@dataclass
class LossConfig:
    """L_total = L_reconstruction + L_rq + contrastive_weight * L_contrastive
    + similarity_weight * L_similarity + neighbour_weight * L_neighbour + unique_weight * L_unique
    (quantizer/core/losses.py)."""

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
    # Target at level l = min(1, relatedness * level_target_scales[l]) (relatedness:
    # losses.RELATEDNESS): at level 1 siblings and same-leaf pairs should both share the code; at
    # level 4 only same-leaf pairs get a moderate target (sharing every level would be a collision).
    level_target_scales: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25)
    temperature: float = 0.1  # softmax(-distance / T) for soft code assignments, per level
    # The pair terms (contrastive, similarity, neighbour, unique) look at pairs among the first
    # `contrastive_rows` rows of a batch (the hierarchical part comes first), to keep their (B, B, K)
    # cost bounded; 0 = all rows.
    contrastive_rows: int = 512
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
    neighbour_threshold: float = 0.8
    neighbour_margin: float = 0.3
    # Collisions: a (row, kNN partner) pair with distinct embeddings that shares every level but
    # the last is pushed apart at the last level (-log(1 - P(share))); needs neighbour_k > 0.
    # Off by default: on BigBasket (full, seed 0) weight 1 took collisions ~19% -> 14% but
    # same-L1 for cos >= 0.9 pairs ~0.985 -> 0.974 and NMI L1 ~0.427 -> 0.411 (below lambda=0).
    unique_weight: float = 0.0

    def __post_init__(self) -> None:
        self.level_weights = tuple(float(w) for w in self.level_weights)
        self.level_target_scales = tuple(float(s) for s in self.level_target_scales)


@dataclass
class TrainingConfig:
    # 60 (was 30): dev split, 30 -> 60 epochs: Spearman 0.672 -> 0.684, same-L1 0.976 -> 0.983,
    # NMI L1 0.404 -> 0.422; 90 epochs added little more (0.693 / 0.984 / 0.431) and would not
    # fit the 10-minute CPU budget.
    epochs: int = 60
    batch_size: int = 1024
    lr: float = 2e-3
    codebook_lr_scale: float = 1.0  # codebook learning rate = lr * this (gradient codebooks)
    seed: int = 0
    # Training reads at most this many products, a random sample drawn with `seed` (every product is
    # still encoded): the cost of an epoch and of the neighbour term's exact kNN grow with it, and the
    # codebooks need far fewer products than a catalog of millions. 0 = all.
    max_train_products: int = 100_000
    kmeans_iters: int = 20  # k-means iterations initialising each codebook
    dead_code_threshold: int = 20  # steps without a hit before a codeword is re-seeded

    def __post_init__(self) -> None:
        if 0 < self.max_train_products < 2:
            raise ValueError("max_train_products must be 0 (all) or at least 2")


@dataclass
class AssignmentConfig:
    # Last level per (L-1)-level prefix: a product that would share its full code with a different
    # product takes the nearest codeword free in its prefix (quantizer/core/spread.py). Off: plain
    # nearest codeword at every level (runs saved before this field load with it off).
    spread_last_level: bool = True
    # Level 1 per near-duplicate group: products joined by cosine >= this (each to its
    # neighbours.NEAR_DUPLICATE_K nearest, connected components) take one level-1 code, the codeword
    # nearest the group's mean latent (quantizer/core/neighbours.py); 0 = off (runs saved before load
    # off). 0.9 is the design's near-duplicate; on BigBasket 0.8 chains 2,281 products into one group,
    # 0.85 110, 0.9 at most 59.
    near_duplicate_threshold: float = 0.9
    # A group larger than this many distinct products is split at a higher threshold (0 = no limit;
    # runs saved before load with 0): Instacart's attribute records chain 3,676 into one group at 0.9.
    near_duplicate_max_group: int = 100


GROUPS = {"model": ModelConfig, "loss": LossConfig, "training": TrainingConfig, "assignment": AssignmentConfig}

# Fields of the flat recipe stored before it was grouped, never varied by any run, test or benchmark,
# with the one value they ever held: now constants beside the code that uses them (commitment_weight:
# losses.COMMITMENT_WEIGHT; the four targets: losses.RELATEDNESS; weight_decay, kmeans_sample,
# reseed_until_fraction, hierarchical_fraction, leaves_per_parent, products_per_leaf: training's
# constants and the sampler's defaults; spread_candidates: spread.SPREAD_CANDIDATES; near_duplicate_k:
# neighbours.NEAR_DUPLICATE_K). A stored dict naming them loads when it holds these values.
RETIRED_FIELDS = {
    "commitment_weight": 0.25,
    "same_leaf_target": 1.0,
    "sibling_target": 0.5,
    "cousin_target": 0.0,
    "unrelated_target": 0.0,
    "weight_decay": 0.0,
    "kmeans_sample": 16384,
    "reseed_until_fraction": 1.0,
    "hierarchical_fraction": 0.5,
    "leaves_per_parent": 4,
    "products_per_leaf": 8,
    "spread_candidates": 32,
    "near_duplicate_k": 10,
}


@dataclass
class RQVAEConfig:
    """The whole recipe, saved with every run so that it can be rebuilt exactly."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    assignment: AssignmentConfig = field(default_factory=AssignmentConfig)
    extra: dict = field(default_factory=dict)  # free-form notes kept with the run

    def __post_init__(self) -> None:
        levels = self.model.levels
        for name in ("level_weights", "level_target_scales"):
            if len(getattr(self.loss, name)) != levels:
                raise ValueError(
                    f"{name} has {len(getattr(self.loss, name))} entries but there are "
                    f"{levels} levels (codebook_sizes={self.model.codebook_sizes})"
                )

    def to_dict(self) -> dict:
        """The flat stored form: {field: value} over every group, tuples as lists, and `extra`."""
        d = {}
        for group in GROUPS:
            for name, value in dataclasses.asdict(getattr(self, group)).items():
                d[name] = list(value) if isinstance(value, tuple) else value
        d["extra"] = dict(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RQVAEConfig":
        """The recipe of a flat dict (`to_dict`'s form, as stored or as overrides): fields it leaves
        out keep the recipe's defaults; fields of `RETIRED_FIELDS` are accepted at their one value."""
        values = dict(d)
        for name, fixed in RETIRED_FIELDS.items():
            if name in values and values.pop(name) != fixed:
                raise ValueError(f"{name} is no longer configurable: it is always {fixed!r}")
        groups = {}
        for group, kind in GROUPS.items():
            names = {f.name for f in dataclasses.fields(kind)}
            groups[group] = kind(**{k: values.pop(k) for k in list(values) if k in names})
        extra = values.pop("extra", {})
        if values:
            raise ValueError(f"unknown RQVAEConfig fields: {sorted(values)}")
        return cls(**groups, extra=dict(extra))

