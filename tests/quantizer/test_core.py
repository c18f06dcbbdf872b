"""The quantizer core on small synthetic data: no Django, no database."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from quantizer.core import (
    HierarchicalBatchSampler,
    RandomBatchSampler,
    RQVAEConfig,
    code_string,
    disambiguate,
    encode,
    intrinsic_metrics,
    load_model,
    pair_relations,
    residual_kmeans,
    save_model,
    spread_last_level,
    train_rqvae,
)
from quantizer.core import neighbours
from quantizer.core.neighbours import keep_codewords_used, near_duplicate_groups, nearest_neighbours
from quantizer.core.metrics import _neighbours, collision_rates
from quantizer.core.rows import row_ids
from quantizer.core.rqvae import exact_float32
from quantizer.core.losses import COUSIN, SAME_LEAF, SIBLING, UNKNOWN, UNRELATED
from quantizer.core.training import deterministic_algorithms, training_sample

DIM = 32


def synthetic_catalog(n_per_leaf: int = 12, seed: int = 0, uncategorized: int = 20):
    """3-level tree: 3 top categories x 2 parents x 3 leaves = 18 leaves; each leaf is a tight
    cluster around its parent's and grandparent's directions. Returns (x, taxonomy)."""
    rng = np.random.default_rng(seed)
    xs, rows = [], []
    leaf = 0
    for top in range(3):
        top_dir = rng.normal(size=DIM) * 3
        for par in range(2):
            par_dir = top_dir + rng.normal(size=DIM) * 1.5
            for _ in range(3):
                leaf_dir = par_dir + rng.normal(size=DIM) * 0.8
                xs.append(leaf_dir + rng.normal(size=(n_per_leaf, DIM)) * 0.15)
                rows += [[top, top * 2 + par, leaf]] * n_per_leaf
                leaf += 1
    xs.append(rng.normal(size=(uncategorized, DIM)) * 3)
    rows += [[-1, -1, -1]] * uncategorized
    x = np.concatenate(xs).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.asarray(rows, np.int64)


def small_config(**kw) -> RQVAEConfig:
    base = dict(
        input_dim=DIM, hidden_dims=(32,), latent_dim=8, codebook_sizes=(8, 8, 8),
        level_weights=(0.5, 0.3, 0.2), level_target_scales=(2.0, 1.0, 0.5),
        epochs=6, batch_size=64, lr=3e-3, kmeans_iters=5, dead_code_threshold=5,
        contrastive_weight=0.1,
    )
    base.update(kw)
    return RQVAEConfig.from_dict(base)


@pytest.fixture(scope="module")
def catalog():
    return synthetic_catalog()


@pytest.fixture(scope="module")
def trained(catalog):
    x, tax = catalog
    return train_rqvae(x, tax, small_config())


# -- config


def test_config_round_trips_through_a_json_able_dict():
    import json

    cfg = small_config(seed=7)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert RQVAEConfig.from_dict(d) == cfg
    assert cfg.model.levels == 3


def test_config_rejects_per_level_tuples_of_the_wrong_length():
    with pytest.raises(ValueError, match="level_weights"):
        RQVAEConfig.from_dict({"codebook_sizes": (16, 16), "level_weights": (0.5, 0.3, 0.2)})


# A run's config as QuantizerRun.config and checkpoints stored it before the recipe was grouped: one flat
# dict of 42 fields (here with latent_dim 16 and 30 epochs).
FLAT_CONFIG_BEFORE_GROUPING = {
    "input_dim": 384, "hidden_dims": [256, 128], "latent_dim": 16, "codebook_sizes": [256, 256, 256, 256],
    "normalize_latent": True, "linear_skip": True, "contrastive_weight": 0.3, "level_weights": [0.4, 0.3, 0.2, 0.1],
    "similarity_weight": 0.0, "neighbour_weight": 0.5, "neighbour_k": 10, "unique_weight": 0.0,
    "neighbour_threshold": 0.8, "neighbour_margin": 0.3, "commitment_weight": 0.25, "temperature": 0.1,
    "same_leaf_target": 1.0, "sibling_target": 0.5, "cousin_target": 0.0, "unrelated_target": 0.0,
    "level_target_scales": [2.0, 1.0, 0.5, 0.25], "epochs": 30, "batch_size": 1024, "lr": 0.002,
    "codebook_lr_scale": 1.0, "weight_decay": 0.0, "seed": 0, "max_train_products": 100000, "kmeans_iters": 20,
    "kmeans_sample": 16384, "dead_code_threshold": 20, "reseed_until_fraction": 1.0, "hierarchical_fraction": 0.5,
    "contrastive_rows": 512, "leaves_per_parent": 4, "products_per_leaf": 8, "spread_last_level": True,
    "spread_candidates": 32, "near_duplicate_threshold": 0.9, "near_duplicate_k": 10, "near_duplicate_max_group": 100,
    "extra": {},
}


def test_a_config_stored_before_the_recipe_was_grouped_loads_as_the_same_recipe():
    config = RQVAEConfig.from_dict(FLAT_CONFIG_BEFORE_GROUPING)
    assert config.model.latent_dim == 16 and config.training.epochs == 30
    assert config == RQVAEConfig.from_dict({"latent_dim": 16, "epochs": 30})
    retired = {k for k in FLAT_CONFIG_BEFORE_GROUPING if k not in config.to_dict()}
    assert retired == {"commitment_weight", "same_leaf_target", "sibling_target", "cousin_target",
                       "unrelated_target", "weight_decay", "kmeans_sample", "reseed_until_fraction",
                       "hierarchical_fraction", "leaves_per_parent", "products_per_leaf", "spread_candidates",
                       "near_duplicate_k"}
    # A value the code can no longer honour is refused, not silently dropped.
    with pytest.raises(ValueError, match="commitment_weight is no longer configurable"):
        RQVAEConfig.from_dict({**FLAT_CONFIG_BEFORE_GROUPING, "commitment_weight": 0.5})
    with pytest.raises(ValueError, match="unknown RQVAEConfig fields: \\['latent_dims'\\]"):
        RQVAEConfig.from_dict({"latent_dims": 16})


def test_the_retired_fields_are_the_constants_the_code_uses():
    from quantizer.core import losses, training
    from quantizer.core.config import RETIRED_FIELDS
    from quantizer.core.neighbours import NEAR_DUPLICATE_K
    from quantizer.core.spread import SPREAD_CANDIDATES

    sampler = HierarchicalBatchSampler(np.zeros((4, 1), np.int64), 2)
    assert RETIRED_FIELDS == {
        "commitment_weight": losses.COMMITMENT_WEIGHT,
        "same_leaf_target": losses.RELATEDNESS[SAME_LEAF],
        "sibling_target": losses.RELATEDNESS[SIBLING],
        "cousin_target": losses.RELATEDNESS[COUSIN],
        "unrelated_target": losses.RELATEDNESS[UNRELATED],
        "weight_decay": training.WEIGHT_DECAY,
        "kmeans_sample": training.KMEANS_SAMPLE,
        "reseed_until_fraction": training.RESEED_UNTIL_FRACTION,
        "hierarchical_fraction": sampler.hierarchical_fraction,
        "leaves_per_parent": sampler.leaves_per_parent,
        "products_per_leaf": sampler.products_per_leaf,
        "spread_candidates": SPREAD_CANDIDATES,
        "near_duplicate_k": NEAR_DUPLICATE_K,
    }


def test_every_field_has_one_name_in_the_flat_form():
    import dataclasses

    from quantizer.core.config import GROUPS, RETIRED_FIELDS

    names = [f.name for kind in GROUPS.values() for f in dataclasses.fields(kind)]
    assert len(names) == len(set(names)) and "extra" not in names and not set(names) & set(RETIRED_FIELDS)
    assert list(RQVAEConfig().to_dict()) == [*names, "extra"]


def test_a_checkpoint_saved_before_the_recipe_was_grouped_loads(catalog, trained):
    import io

    x, _ = catalog
    payload = torch.load(io.BytesIO(save_model(trained.model)), weights_only=True)
    flat = {**FLAT_CONFIG_BEFORE_GROUPING, **payload["config"]}  # every field of then, this model's values
    assert len(flat) == len(FLAT_CONFIG_BEFORE_GROUPING)
    buf = io.BytesIO()
    torch.save({**payload, "config": flat}, buf)
    model, config = load_model(buf.getvalue())
    assert config == trained.config
    assert np.array_equal(encode(model, x).codes, encode(trained.model, x).codes)


# -- training and encoding


def test_training_reports_every_loss_term_separately_and_finite(catalog, trained):
    x, tax = catalog
    assert len(trained.history) == 6
    for row in trained.history:
        for key in ("reconstruction", "rq", "codebook", "commitment", "contrastive",
                    "similarity", "neighbour", "total"):
            assert math.isfinite(row[key]), (key, row)
        for level in (1, 2, 3):
            assert 0.0 <= row[f"utilization_l{level}"] <= 1.0
    assert trained.history[-1]["contrastive"] > 0
    assert trained.history[-1]["neighbour"] > 0
    assert trained.seconds > 0
    # With the PCA skip paths the decoder starts at the least-squares fit, so reconstruction
    # is already low; without them (a random MLP), training has to bring it down.
    legacy = train_rqvae(x, tax, small_config(linear_skip=False, normalize_latent=False))
    assert legacy.history[-1]["reconstruction"] < legacy.history[0]["reconstruction"]
    assert trained.history[-1]["reconstruction"] < 0.5 * legacy.history[-1]["reconstruction"]


def test_encode_returns_codes_errors_and_gaps_of_the_right_shapes(catalog, trained):
    x, _ = catalog
    enc = encode(trained.model, x, batch_size=50)
    assert enc.codes.shape == (len(x), 3) and enc.codes.dtype == np.int64
    assert enc.codes.min() >= 0 and enc.codes.max() < 8
    assert enc.reconstruction_error.shape == (len(x),)
    assert enc.reconstruction_error.dtype == np.float32
    assert np.all(enc.reconstruction_error >= -1e-5) and np.all(enc.reconstruction_error <= 2)
    assert enc.gaps.shape == (len(x), 3) and np.all(enc.gaps >= 0)


def test_the_epoch_hook_is_called_once_per_epoch(catalog):
    x, tax = catalog
    calls = []
    train_rqvae(x, tax, small_config(epochs=2), on_epoch=lambda e, t, row: calls.append((e, t)))
    assert calls == [(1, 2), (2, 2)]


def test_lambda_zero_and_no_taxonomy_train_reconstruction_only(catalog):
    x, tax = catalog
    for taxonomy, cfg in ((tax, small_config(epochs=2, contrastive_weight=0.0)),
                          (None, small_config(epochs=2))):
        result = train_rqvae(x, taxonomy, cfg)
        assert all(row["contrastive"] == 0.0 for row in result.history)


def test_codebooks_start_from_kmeans_on_real_residuals(catalog):
    x, tax = catalog
    result = train_rqvae(x, tax, small_config(epochs=0))
    z = result.model.latent(torch.from_numpy(x)).detach()
    codebook = result.model.quantizer.codebooks[0].detach()
    # Every level-1 codeword sits on the data (near some latent), not at its random init.
    nearest = torch.cdist(codebook, z).min(1).values
    spread = torch.cdist(z, z).mean()
    assert float(nearest.max()) < 0.5 * float(spread)
    assert bool(result.model.quantizer.initialized)


def test_dead_codes_are_reseeded_from_current_residuals(catalog):
    x, tax = catalog
    result = train_rqvae(x, tax, small_config(epochs=0))
    model = result.model
    quantizer = model.quantizer
    with torch.no_grad():
        quantizer.codebooks[0].data[3] = 1e3  # far away: never chosen
        _, out = model(torch.from_numpy(x[:64]))
        gen = torch.Generator().manual_seed(0)
        for _ in range(4):
            counts = quantizer.reseed_dead_codes(out, threshold=5, generator=gen)
            assert counts[0] == 0
        counts = quantizer.reseed_dead_codes(out, threshold=5, generator=gen)
    assert counts[0] >= 1
    reseeded = quantizer.codebooks[0].detach()[3]
    residuals = out.residuals[0].detach()
    assert torch.isclose(residuals, reseeded[None]).all(1).any()


class HostReads(TorchDispatchMode):
    """Records the ops that make the host wait for the device on CUDA: reading a value (item, bool,
    int, float) or making a tensor whose size depends on the data (nonzero, boolean-mask indexing,
    unique). A CUDA graph cannot hold them."""

    SIZED_BY_DATA = {"aten::nonzero", "aten::masked_select", "aten::_unique2", "aten::unique_dim",
                     "aten::unique_consecutive"}

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        indices = args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ()
        if (name == "aten::_local_scalar_dense" or name in self.SIZED_BY_DATA
                or any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices)):
            self.reads.append(name)
        return func(*args, **(kwargs or {}))


def test_a_training_step_never_reads_the_device_from_the_host(catalog):
    """What runs inside the CUDA graph of a step: every loss term, the backward pass, counting idle
    codewords and re-seeding them (the optimizer is torch's capturable AdamW)."""
    from quantizer.core.neighbours import input_neighbours
    from quantizer.core.losses import loss_terms, loss_weights, relation_targets, total_loss

    x, tax = catalog
    cfg = small_config(similarity_weight=0.5, neighbour_weight=0.5, unique_weight=1.0, neighbour_k=5,
                       contrastive_rows=32, dead_code_threshold=1)
    model = train_rqvae(x, tax, small_config(epochs=0)).model
    xt, taxt = torch.from_numpy(x), torch.from_numpy(tax)
    knn = input_neighbours(xt, cfg.loss.neighbour_k)
    idx = torch.arange(0, len(x), 3)[:64]
    cols = torch.zeros(32, dtype=torch.long)
    with HostReads() as mode:
        terms, q = loss_terms(model, cfg.loss, xt, idx, tax=taxt, targets=relation_targets(cfg.loss, "cpu"), knn=knn,
                              partner_cols=cols, near_cols=cols)
        total = total_loss(terms, loss_weights(cfg.loss))
        total.backward()
        counts = model.quantizer.reseed_dead_codes(q, threshold=cfg.training.dead_code_threshold)
    assert mode.reads == []
    assert all(float(terms[k].detach()) > 0 for k in ("contrastive", "similarity", "neighbour", "unique"))
    assert float(total.detach()) > 0
    assert counts.tolist() == [k - len(q.codes[:, level].unique()) for level, k in enumerate(cfg.model.codebook_sizes)]


def test_the_total_loss_is_the_weighted_sum_of_the_terms_that_are_on(catalog):
    from quantizer.core.losses import loss_terms, loss_weights, relation_targets, total_loss

    x, tax = catalog
    cfg = small_config(contrastive_weight=0.1, neighbour_weight=0.5, similarity_weight=0.0)
    model = train_rqvae(x, tax, small_config(epochs=0)).model
    xt = torch.from_numpy(x)
    terms, _ = loss_terms(model, cfg.loss, xt, torch.arange(64), tax=torch.from_numpy(tax),
                          targets=relation_targets(cfg.loss, "cpu"))
    assert set(terms) == {"reconstruction", "rq", "codebook", "commitment", "contrastive", "neighbour"}
    with torch.no_grad():
        assert torch.equal(terms["rq"], terms["codebook"] + 0.25 * terms["commitment"])
        expected = terms["reconstruction"] + terms["rq"] + 0.1 * terms["contrastive"] + 0.5 * terms["neighbour"]
        assert torch.equal(total_loss(terms, loss_weights(cfg.loss)), expected)
    # Without a taxonomy the contrastive term is off; its weight alone does not turn it on.
    assert "contrastive" not in loss_terms(model, cfg.loss, xt, torch.arange(64))[0]


def test_no_codebook_collapse_on_clustered_data():
    x, tax = synthetic_catalog(n_per_leaf=20, seed=1)
    cfg = small_config(codebook_sizes=(8, 8, 8), epochs=10)
    result = train_rqvae(x, tax, cfg)
    codes = encode(result.model, x).codes
    m = intrinsic_metrics(x, codes, tax, codebook_sizes=cfg.model.codebook_sizes, n_pairs=2000)
    for level in (1, 2, 3):
        assert m[f"utilization_l{level}"] >= 0.85, m
        assert m[f"perplexity_l{level}"] >= 4, m
    # Level 1 follows the taxonomy on data where the taxonomy is the cluster structure.
    assert m["nmi_l1"] > 0.5, m


def test_same_data_and_seed_give_identical_codes(catalog, trained):
    x, tax = catalog
    again = train_rqvae(x, tax, small_config())
    assert np.array_equal(encode(trained.model, x).codes, encode(again.model, x).codes)
    other = train_rqvae(x, tax, small_config(seed=1))
    assert not np.array_equal(encode(trained.model, x).codes, encode(other.model, x).codes)


def test_training_reads_a_seeded_sample_of_at_most_max_train_products(catalog):
    x, tax = catalog
    capped = small_config(max_train_products=100, epochs=2)
    rows = training_sample(len(x), capped.training)
    assert len(rows) == 100 and len(np.unique(rows)) == 100 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, training_sample(len(x), capped.training))
    assert not np.array_equal(rows, training_sample(len(x), small_config(max_train_products=100, seed=1).training))
    assert len(training_sample(len(x), small_config(max_train_products=0).training)) == len(x)
    on_sample = train_rqvae(x, tax, capped)
    on_subset = train_rqvae(x[rows], tax[rows], small_config(max_train_products=0, epochs=2))
    for name, value in on_sample.model.state_dict().items():
        assert torch.equal(value, on_subset.model.state_dict()[name]), name
    assert len(encode(on_sample.model, x).codes) == len(x)  # every product is still encoded
    with pytest.raises(ValueError, match="max_train_products"):
        small_config(max_train_products=1)


def test_training_leaves_global_rng_and_tf32_settings_alone(catalog):
    x, tax = catalog
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        train_rqvae(x, tax, small_config(epochs=1))
        assert torch.backends.cuda.matmul.allow_tf32 is True
        assert torch.equal(torch.rand(3), expected)
        with exact_float32():
            assert torch.backends.cuda.matmul.allow_tf32 is False
            assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is True
        assert not torch.are_deterministic_algorithms_enabled()  # training's own setting is restored
        with deterministic_algorithms():
            assert torch.are_deterministic_algorithms_enabled()
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def test_save_and_load_give_identical_codes(catalog, trained):
    x, _ = catalog
    blob = save_model(trained.model, trained.config)
    assert isinstance(blob, bytes)
    model, config = load_model(blob)
    assert config == trained.config
    before, after = encode(trained.model, x), encode(model, x)
    assert np.array_equal(before.codes, after.codes)
    assert np.array_equal(before.gaps, after.gaps)
    assert np.array_equal(before.reconstruction_error, after.reconstruction_error)


def test_warm_start_begins_where_the_previous_run_ended(catalog, trained):
    x, tax = catalog
    state = trained.model.state_dict()
    # No re-seeding in this short run, so only the warm start can explain the codes.
    quiet = dict(epochs=1, lr=1e-6, dead_code_threshold=10_000)
    warm = train_rqvae(x, tax, small_config(**quiet), init_state=state)
    cold = train_rqvae(x, tax, small_config(**quiet, seed=5))
    codes = encode(trained.model, x).codes
    warm_same = (encode(warm.model, x).codes == codes).all(1).mean()
    cold_same = (encode(cold.model, x).codes == codes).all(1).mean()
    assert warm_same > 0.95 and warm_same > cold_same
    assert warm.history[0]["reconstruction"] <= cold.history[0]["reconstruction"]


def test_training_rejects_embeddings_of_the_wrong_width(catalog):
    x, tax = catalog
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        train_rqvae(x, tax, small_config(input_dim=16))


def test_linear_skip_starts_from_pca_and_preserves_neighbourhoods(catalog):
    x, tax = catalog
    cfg = small_config(epochs=0, linear_skip=True, normalize_latent=True)
    model = train_rqvae(x, tax, cfg).model
    with torch.no_grad():
        z = model.latent(torch.from_numpy(x)).numpy()
    # MLP branch starts at zero: the latent is the (normalised) PCA projection.
    xc = x - x.mean(0)
    proj = xc @ np.linalg.svd(xc, full_matrices=False)[2][: cfg.model.latent_dim].T
    proj /= np.linalg.norm(proj, axis=1, keepdims=True)
    proj *= np.sign((z * proj).sum(0))  # principal directions are defined up to sign
    assert np.allclose((z * proj).sum(1), 1.0, atol=1e-3)
    # A product's nearest neighbour in the latent sits in its own leaf, as in the input.
    s = z @ z.T
    np.fill_diagonal(s, -np.inf)
    nearest = s.argmax(1)
    cat = tax[:, 2] >= 0
    assert (tax[nearest[cat], 2] == tax[cat, 2]).mean() > 0.9


def test_linear_skip_trains_with_fewer_products_than_latent_dims():
    x, tax = synthetic_catalog(n_per_leaf=1, uncategorized=0)  # 18 products, latent 24
    result = train_rqvae(x, tax, small_config(latent_dim=24, epochs=2, batch_size=8))
    assert all(math.isfinite(row["total"]) for row in result.history)
    assert encode(result.model, x).codes.shape == (18, 3)


def test_new_loss_terms_are_finite_reported_and_trainable(catalog):
    x, tax = catalog
    cfg = small_config(
        epochs=3, linear_skip=True, normalize_latent=True, similarity_weight=1.0,
        neighbour_weight=0.5, neighbour_threshold=0.8, neighbour_k=5, unique_weight=1.0,
        codebook_lr_scale=0.5,
    )
    result = train_rqvae(x, tax, cfg)
    for row in result.history:
        for key in ("similarity", "neighbour", "unique"):
            assert math.isfinite(row[key]) and row[key] >= 0, (key, row)
    assert result.history[-1]["similarity"] > 0
    assert any(row["neighbour"] > 0 for row in result.history)
    # Switched off, they are reported as exact zeros.
    off = train_rqvae(x, tax, small_config(epochs=1, neighbour_weight=0.0, unique_weight=1.0))
    assert off.history[0]["similarity"] == 0.0 and off.history[0]["neighbour"] == 0.0
    assert off.history[0]["unique"] == 0.0  # needs the kNN partners of the neighbour term


def test_similarity_and_neighbour_losses_on_known_inputs():
    from quantizer.core.rqvae import QuantizerOutput
    from quantizer.core.losses import neighbour_loss, similarity_loss

    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    zero = torch.zeros(2)
    assert float(similarity_loss(x, x, zero)) == pytest.approx(0.0, abs=1e-7)
    # A rotation keeps every cosine; squashing two products together does not.
    rotated = x.flip(1) * torch.tensor([1.0, -1.0])
    assert float(similarity_loss(rotated, x, zero)) == pytest.approx(0.0, abs=1e-6)
    squashed = torch.tensor([[1.0, 0.0], [1.0, 0.1], [1.0, 1.0]])
    assert float(similarity_loss(squashed, x, zero)) > 0.1
    # Two near-duplicates and one far product: the loss is lower when the duplicates share
    # their level-1 code than when they don't.
    x = torch.tensor([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]])
    cfg = small_config(neighbour_threshold=0.9, neighbour_margin=0.3, temperature=0.1)

    def out(dist):
        return QuantizerOutput(x, torch.zeros(3, 1, dtype=torch.long), [x], [dist], x.sum(), x.sum())

    same = torch.tensor([[0.0, 4.0], [0.0, 4.0], [4.0, 0.0]])
    split = torch.tensor([[0.0, 4.0], [4.0, 0.0], [4.0, 0.0]])
    assert float(neighbour_loss(out(same), x, cfg.loss)) < float(neighbour_loss(out(split), x, cfg.loss))


def test_neighbour_loss_has_the_gradient_of_the_means_over_the_selected_pairs():
    """The loss sums over masks (no host sync); its gradient is bit for bit that of the plain
    means over share[positive] / share[negative] it replaced, so CPU runs keep their codes."""
    from quantizer.core.rqvae import QuantizerOutput
    from quantizer.core.losses import neighbour_loss, soft_assignments

    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(40, 8, generator=g) + 2 * torch.randn(4, 8, generator=g).repeat(10, 1), dim=1)
    dist = torch.rand(40, 16, generator=g)
    partner = torch.rand(40, 16, generator=g)
    cfg = small_config(neighbour_threshold=0.8, neighbour_margin=0.3)

    def grad(loss_fn):
        d = dist.clone().requires_grad_(True)
        loss = loss_fn(d)
        loss.backward()
        return loss.detach(), d.grad

    def gathered(d):
        xn = F.normalize(x, dim=1)
        cos = xn @ xn.t()
        off = ~torch.eye(len(x), dtype=torch.bool)
        p = soft_assignments(d, cfg.loss.temperature)
        share = (p @ p.t()).clamp(1e-6, 1 - 1e-6)
        pp = soft_assignments(partner, cfg.loss.temperature)
        pos = torch.cat([-torch.log(share[off & (cos >= 0.8)]), -torch.log((p * pp).sum(1).clamp(1e-6, 1 - 1e-6))])
        neg = -torch.log1p(-share[off & (cos < 0.5)])
        return (pos.mean() + neg.mean()) / 2

    def masked(d):
        out = QuantizerOutput(x, torch.zeros(40, 1, dtype=torch.long), [x], [d], x.sum(), x.sum())
        return neighbour_loss(out, x, cfg.loss, partner)

    expected, expected_grad = grad(gathered)
    loss, loss_grad = grad(masked)
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    assert torch.equal(loss_grad, expected_grad)
    # No negative pair: exactly 0, and no gradient.
    cfg.loss.neighbour_margin = 2.0
    loss, loss_grad = grad(masked)
    assert float(loss) == 0.0 and not loss_grad.any()


def test_uniqueness_loss_only_counts_distinct_pairs_that_share_the_prefix():
    from quantizer.core.rqvae import QuantizerOutput
    from quantizer.core.losses import uniqueness_loss

    cfg = small_config(codebook_sizes=(2, 2), level_weights=(0.5, 0.5),
                       level_target_scales=(1.0, 1.0))
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    partner_x = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])
    codes = torch.tensor([[0, 1], [0, 1], [1, 0]])
    partner_codes = torch.tensor([[0, 1], [0, 0], [0, 0]])  # row 1: same text; row 2: other l1
    near = torch.tensor([[4.0, 0.0]] * 3)  # soft assignment close to codeword 1

    def out(c, d):
        return QuantizerOutput(x, c, [x, x], [d, d], x.sum(), x.sum())

    loss = uniqueness_loss(out(codes, near), out(partner_codes, near), x, partner_x, cfg.loss)
    assert float(loss) > 1.0  # row 0 collides: both sit on codeword 1 at the last level
    apart = torch.tensor([[0.0, 4.0]] * 3)
    assert float(uniqueness_loss(out(codes, near), out(partner_codes, apart), x, partner_x, cfg.loss)) < 0.1
    # No qualifying pair: exactly zero.
    assert float(uniqueness_loss(out(codes, near), out(partner_codes, near), x, x, cfg.loss)) == 0.0


def test_format_1_models_still_load(catalog):
    import io

    x, tax = catalog
    old = train_rqvae(x, tax, small_config(epochs=1, linear_skip=False, normalize_latent=False))
    payload = torch.load(io.BytesIO(save_model(old.model)), weights_only=True)
    payload["format"] = 1
    for key in ("linear_skip", "similarity_weight", "neighbour_weight"):
        payload["config"].pop(key, None)
    payload["state_dict"].pop("input_mean")
    buf = io.BytesIO()
    torch.save(payload, buf)
    model, config = load_model(buf.getvalue())
    assert config.model.linear_skip is False
    assert np.array_equal(encode(model, x).codes, encode(old.model, x).codes)


# -- taxonomy relations and the contrastive term


def test_pair_relations_grade_the_tree():
    tax = torch.tensor([
        [0, 0, 0],  # a
        [0, 0, 0],  # same leaf as a
        [0, 0, 1],  # sibling of a (same parent 0)
        [0, 1, 2],  # cousin (same top category, other parent)
        [1, 2, 3],  # unrelated
        [-1, -1, -1],  # uncategorized
    ])
    rel = pair_relations(tax)
    assert rel[0, 1] == SAME_LEAF and rel[0, 2] == SIBLING
    assert rel[0, 3] == COUSIN and rel[0, 4] == UNRELATED
    assert (rel[5] == UNKNOWN).all() and (rel[:, 5] == UNKNOWN).all()
    assert (rel.diagonal() == UNKNOWN).all()
    assert torch.equal(rel, rel.t())


def test_contrastive_term_pulls_same_leaf_products_into_one_level1_code():
    # Each leaf is two far-apart blobs: geometry alone gives the halves different level-1
    # codes; the taxonomy term should make more same-leaf pairs share their level-1 code.
    rng = np.random.default_rng(4)
    blobs = rng.normal(size=(16, DIM))
    blob = np.repeat(np.arange(16), 15)
    x = (blobs[blob] + rng.normal(size=(len(blob), DIM)) * 0.2).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    leaf = blob % 8  # blobs b and b + 8 form one leaf
    tax = np.stack([leaf // 4, leaf // 2, leaf], 1).astype(np.int64)
    same_leaf = (leaf[:, None] == leaf[None, :]) & ~np.eye(len(leaf), dtype=bool)
    shared = {}
    for weight in (0.0, 1.0):
        # unique_weight=0: 16 tight blobs of 15 products in 8x8x8 codes must collide, and the
        # uniqueness term then outweighs the taxonomy term on this toy (not on BigBasket).
        cfg = small_config(codebook_sizes=(8, 8, 8), epochs=12, contrastive_weight=weight,
                           unique_weight=0.0)
        codes = encode(train_rqvae(x, tax, cfg).model, x).codes
        shared[weight] = (codes[:, 0][:, None] == codes[:, 0][None, :])[same_leaf].mean()
    assert shared[1.0] > shared[0.0] + 0.1, shared


# -- hierarchical batches


def test_hierarchical_batches_mix_one_parent_family_with_random_products(catalog):
    _, tax = catalog
    sampler = HierarchicalBatchSampler(tax, 64, seed=3, leaves_per_parent=3, products_per_leaf=4)
    batches = sampler.batches(epoch=0)
    assert len(batches) == math.ceil(len(tax) / 64)
    for batch in batches:
        assert len(batch) == 64 and len(set(batch.tolist())) == 64
        hier, rest = batch[:32], batch[32:]
        # The hierarchical half: groups of one parent's leaves, several products per leaf.
        assert (tax[hier, 0] >= 0).all()
        leaves, counts = np.unique(tax[hier, 2], return_counts=True)
        assert counts.max() >= 2  # same-leaf pairs occur
        parents_with_two_leaves = [
            p for p in np.unique(tax[hier, 1]) if len(np.unique(tax[hier][tax[hier, 1] == p, 2])) >= 2
        ]
        assert parents_with_two_leaves  # sibling pairs occur
        assert len(rest) == 32
    # Uncategorized products appear only in the random half, and they do appear.
    assert any((tax[b[32:], 0] < 0).any() for b in batches)


def test_hierarchical_batches_are_deterministic_given_the_seed(catalog):
    _, tax = catalog
    a = HierarchicalBatchSampler(tax, 64, seed=3).batches(epoch=2)
    b = HierarchicalBatchSampler(tax, 64, seed=3).batches(epoch=2)
    c = HierarchicalBatchSampler(tax, 64, seed=4).batches(epoch=2)
    d = HierarchicalBatchSampler(tax, 64, seed=3).batches(epoch=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert not all(np.array_equal(x, y) for x, y in zip(a, d))


def test_an_epoch_drawn_one_batch_at_a_time_is_the_epoch_drawn_at_once(catalog):
    _, tax = catalog
    for sampler in (HierarchicalBatchSampler(tax, 64, seed=3), RandomBatchSampler(len(tax), 50, seed=3)):
        at_once = sampler.batches(epoch=2)
        one_by_one = list(sampler.iter_batches(epoch=2))
        assert len(one_by_one) == len(at_once) == len(sampler)
        assert all(np.array_equal(a, b) for a, b in zip(at_once, one_by_one))


def test_sampler_with_a_flat_taxonomy_uses_the_root_as_parent():
    tax = np.repeat(np.arange(10), 5)[:, None]
    batch = HierarchicalBatchSampler(tax, 20, seed=0, products_per_leaf=3).batches(0)[0]
    assert len(batch) == 20 and len(set(batch.tolist())) == 20


# -- baseline


def test_residual_kmeans_gives_one_code_per_level_and_separates_clusters(catalog):
    x, tax = catalog
    codes = residual_kmeans(x, (6, 4), seed=0, iters=10)
    assert codes.shape == (len(x), 2) and codes.dtype == np.int64
    assert codes[:, 0].max() < 6 and codes[:, 1].max() < 4
    again = residual_kmeans(x, (6, 4), seed=0, iters=10)
    assert np.array_equal(codes, again)
    cat = tax[:, 0] >= 0
    m = intrinsic_metrics(x[cat], codes[cat], tax[cat], n_pairs=1000)
    assert m["nmi_l2"] > 0.6  # 6 clusters vs 6 parents


# -- collision-aware last level


def _collisions(x, codes):
    """Products sharing their full code with a product of a different embedding."""
    return collision_rates(x, codes)[0]


def test_spread_moves_only_the_farther_of_two_colliders_to_its_next_free_codeword():
    codes = np.array([[0, 0, 1], [0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 0, 3]])
    cand = np.array([[1, 2, 3], [1, 3, 2], [1, 2, 3], [1, 3, 2], [3, 1, 2]])
    dist = np.array([[0.1, 0.5, 0.9], [0.2, 0.3, 0.8], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])

    out = spread_last_level(codes, cand, dist)

    # Row 0 is nearer codeword 1 than row 1, so row 1 moves to its next codeword, 3; rows 2-4 have
    # their full codes to themselves and keep them, and nothing above the last level changes.
    assert out.tolist() == [[0, 0, 1], [0, 0, 3], [0, 1, 1], [1, 0, 1], [1, 0, 3]]
    assert out is not codes and codes[1, 2] == 1


def test_spread_keeps_identical_products_together_and_respects_codes_held_outside():
    codes = np.array([[0, 1], [0, 1], [0, 1]])
    cand = np.array([[1, 2, 3], [1, 2, 3], [1, 3, 2]])
    dist = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.2, 0.25, 0.4]])

    same_text = spread_last_level(codes, cand, dist, units=np.array([7, 7, 8]))
    assert same_text[:, 1].tolist() == [1, 1, 3]  # the twins keep 1 together, row 2 takes 3

    # 1 and 2 are held outside: codeword 3 is the only free one, and the closest pair takes it
    # (row 2 at 0.25 before the twins at 0.3); the twins, with nothing free left, keep 1.
    held = spread_last_level(codes, cand, dist, units=np.array([7, 7, 8]), occupied=[(0, 1), (0, 2)])
    assert held[:, 1].tolist() == [1, 1, 3]


def test_spread_keeps_the_nearest_codeword_when_no_candidate_is_free_and_breaks_ties_by_row():
    codes = np.array([[0, 1], [0, 1], [0, 1]])
    cand = np.array([[1, 2], [1, 2], [1, 2]])
    dist = np.full((3, 2), 0.5)

    out = spread_last_level(codes, cand, dist)

    assert out[:, 1].tolist() == [1, 2, 1]  # equal distances: lower rows first; row 2 overflows
    assert np.array_equal(out, spread_last_level(codes, cand, dist))


def _spread_pair_by_pair(codes, cand, dist, units, occupied):
    """The spread's rule taken literally: every (contested product, candidate) pair in ascending distance (ties:
    lower unit, then nearer candidate), taken where the product has none yet and the full code is free."""
    _, first, member_of = np.unique(units, return_index=True, return_inverse=True)
    last = codes[first, -1].copy()
    full = [(*codes[f, :-1].tolist(), int(c)) for f, c in zip(first, last)]
    taken = {tuple(code) for code in occupied}
    contested = [u for u, code in enumerate(full) if full.count(code) > 1 or code in taken]
    taken |= {code for u, code in enumerate(full) if u not in contested}
    pairs = sorted((float(dist[first[u], j]), r, j) for r, u in enumerate(contested) for j in range(cand.shape[1]))
    done = set()
    for _, r, j in pairs:
        u = contested[r]
        key = (*codes[first[u], :-1].tolist(), int(cand[first[u], j]))
        if r not in done and key not in taken:
            taken.add(key)
            last[u] = key[-1]
            done.add(r)
    out = codes.copy()
    out[:, -1] = last[member_of.ravel()]
    return out


@pytest.mark.parametrize("seed", range(4))
def test_spread_in_rounds_takes_the_same_codewords_as_the_closest_pair_first_one_pair_at_a_time(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        n, levels, k = int(rng.integers(1, 120)), int(rng.integers(1, 4)), int(rng.integers(1, 6))
        width = int(rng.integers(k, 9))
        codes = np.stack([rng.integers(0, 3, n) for _ in range(levels - 1)] + [rng.integers(0, width, n)], 1)
        cand = np.stack([rng.permutation(width)[:k] for _ in range(n)])
        cand[:, 0] = codes[:, -1]
        dist = np.sort(rng.normal(size=(n, k)), 1)  # float64 values float32 cannot hold; negatives
        if rng.random() < 0.5:
            dist = np.round(dist, 1).astype(np.float32)  # ties, and the float32 path
        units = rng.integers(0, n, n)
        _, rep, unit_of = np.unique(units, return_index=True, return_inverse=True)  # equal units: equal rows
        codes, cand, dist = codes[rep][unit_of], cand[rep][unit_of], dist[rep][unit_of]
        occupied = [tuple(int(v) for v in rng.integers(0, [3] * (levels - 1) + [width])) for _ in range(5)]

        out = spread_last_level(codes, cand, dist, units=units, occupied=occupied)

        assert np.array_equal(out, _spread_pair_by_pair(codes, cand, dist, units, occupied))


def test_spread_rejects_candidates_that_do_not_match_the_codes():
    with pytest.raises(ValueError, match="candidates"):
        spread_last_level(np.zeros((3, 2), int), np.zeros((2, 4), int), np.zeros((2, 4)))


def test_encode_spreads_collisions_and_a_config_can_turn_it_off(catalog, trained):
    x, _ = catalog
    encoded = encode(trained.model, x)
    nearest = encoded.nearest_codes

    assert np.array_equal(encoded.codes[:, :-1], nearest[:, :-1])
    assert _collisions(x, nearest) > 0.05  # 236 products in 8 x 8 x 8 cells: plenty collide
    # Every prefix now uses as many distinct last codewords as it can (8 at most).
    prefixes, inverse = np.unique(nearest[:, :-1], axis=0, return_inverse=True)
    for p in range(len(prefixes)):
        rows = inverse.ravel() == p
        units = len(np.unique(x[rows], axis=0))
        assert len(np.unique(encoded.codes[rows, -1])) == min(units, 8)
    assert _collisions(x, encoded.codes) < _collisions(x, nearest)
    # A product alone on its nearest full code keeps it.
    _, inverse, counts = np.unique(nearest, axis=0, return_inverse=True, return_counts=True)
    alone = counts[inverse.ravel()] == 1
    assert np.array_equal(encoded.codes[alone], nearest[alone])

    trained.model.config.assignment.spread_last_level = False
    try:
        plain = encode(trained.model, x)
    finally:
        trained.model.config.assignment.spread_last_level = True
    assert np.array_equal(plain.codes, nearest)


def test_models_saved_before_spreading_load_with_it_off(catalog, trained):
    import io

    x, _ = catalog
    payload = torch.load(io.BytesIO(save_model(trained.model)), weights_only=True)
    payload["config"].pop("spread_last_level")
    payload["config"].pop("near_duplicate_threshold")
    buf = io.BytesIO()
    torch.save(payload, buf)
    model, config = load_model(buf.getvalue())
    assert config.assignment.spread_last_level is False and config.assignment.near_duplicate_threshold == 0.0
    trained.model.config.assignment.near_duplicate_threshold = 0.0
    try:
        assert np.array_equal(encode(model, x).codes, encode(trained.model, x).nearest_codes)
    finally:
        trained.model.config.assignment.near_duplicate_threshold = 0.9


def test_models_saved_before_the_group_cap_load_without_it(trained):
    import io

    payload = torch.load(io.BytesIO(save_model(trained.model)), weights_only=True)
    assert payload["config"]["near_duplicate_max_group"] == 100
    payload["config"].pop("near_duplicate_max_group")
    buf = io.BytesIO()
    torch.save(payload, buf)
    _, config = load_model(buf.getvalue())
    assert config.assignment.near_duplicate_max_group == 0 and config.assignment.near_duplicate_threshold == 0.9


def test_encode_keeps_new_products_off_codes_held_by_others(catalog, trained):
    x, _ = catalog
    first = encode(trained.model, x[:1]).codes[0]
    asked = []

    def held(prefixes):
        asked.append(prefixes.tolist())
        return [tuple(first)]

    moved = encode(trained.model, x[:1], occupied=held).codes[0]
    assert asked == [[first[:-1].tolist()]]  # looked up by the rows' prefixes
    assert moved[:-1].tolist() == first[:-1].tolist() and moved[-1] != first[-1]


def test_residual_kmeans_spreads_its_last_level_too(catalog):
    x, _ = catalog
    plain = residual_kmeans(x, (4, 4, 4), seed=0, iters=10, spread=False)
    spread = residual_kmeans(x, (4, 4, 4), seed=0, iters=10)
    assert np.array_equal(plain[:, :-1], spread[:, :-1])
    assert _collisions(x, spread) < _collisions(x, plain)
    # near-duplicate groups share their level-1 centroid, as in the RQ-VAE
    t = np.linspace(0, 1, 41, dtype=np.float32)[:, None]
    far = int(np.flatnonzero(plain[:, 0] != plain[0, 0])[0])
    chain = (1 - t) * x[0] + t * x[far]
    chain /= np.linalg.norm(chain, axis=1, keepdims=True)
    rows = np.concatenate([x, chain])
    grouped = residual_kmeans(rows, (4, 4, 4), seed=0, iters=10)
    ungrouped = residual_kmeans(rows, (4, 4, 4), seed=0, iters=10, near_duplicate_threshold=0)
    assert len(set(grouped[len(x):, 0].tolist())) == 1
    groups = near_duplicate_groups(rows, 0.9)
    moved = grouped[:, 0] != ungrouped[:, 0]
    assert (np.bincount(groups)[groups[moved]] > 1).all()  # only grouped rows leave their nearest centroid


# -- near-duplicate groups share level 1


def test_near_duplicate_groups_join_rows_above_the_threshold_transitively():
    base = np.eye(4, dtype=np.float32)
    x = np.stack([base[0], base[0] + 0.3 * base[1], base[0] + 0.6 * base[1], base[2], base[3], base[3] + 0.1 * base[2]])
    groups = near_duplicate_groups(x, 0.9, k=2)
    # rows 0-1 and 1-2 are >= 0.9 (0-2 is not): one group by the chain; 4-5 another; 3 alone
    assert groups[0] == groups[1] == groups[2]
    assert groups[4] == groups[5] and len({groups[0], groups[3], groups[4]}) == 3


def test_near_duplicate_groups_see_past_many_identical_rows():
    a = np.array([1.0, 0.0, 0.0], np.float32)
    near = np.array([1.0, 0.3, 0.0], np.float32)  # cosine 0.96 with a
    x = np.stack([a] * 12 + [near, np.array([0.0, 0.0, 1.0], np.float32)])
    groups = near_duplicate_groups(x, 0.9, k=10)  # a's 11 copies would fill its 10 nearest rows
    assert len(set(groups[:13].tolist())) == 1 and groups[13] != groups[0]


def test_near_duplicate_groups_larger_than_max_size_split_at_their_weakest_links():
    # a chain on the circle whose links alternate cosine 0.99 and 0.95 (rows two apart: 0.896)
    steps = np.arccos([0.99, 0.95, 0.99, 0.95, 0.99])
    theta = np.concatenate([[0.0], np.cumsum(steps)])
    x = np.stack([np.cos(theta), np.sin(theta)], 1).astype(np.float32)
    assert len(set(near_duplicate_groups(x, 0.9, k=2).tolist())) == 1
    assert len(set(near_duplicate_groups(x, 0.9, k=2, max_size=6).tolist())) == 1
    split = near_duplicate_groups(x, 0.9, k=2, max_size=4)
    assert split[0] == split[1] and split[2] == split[3] and split[4] == split[5]
    assert len(set(split.tolist())) == 3


def _clustered(n_clusters=40, per=50, dim=16, spread=0.25, seed=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    x = np.repeat(centres, per, axis=0) + rng.normal(size=(n_clusters * per, dim)) * spread
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_probed_neighbours_find_nearly_all_exact_ones_without_self_or_repeats():
    x = torch.from_numpy(_clustered())
    _, exact_sim = nearest_neighbours(x, 10)
    idx, sim = nearest_neighbours(x, 10, exact_limit=0)  # above the limit: probed cells
    rows = torch.arange(len(x))[:, None]
    assert not (idx == rows).any()
    ordered = idx.sort(dim=1).values
    assert not (ordered[:, 1:] == ordered[:, :-1]).any()
    assert torch.allclose(sim, (F.normalize(x, dim=1)[rows] * F.normalize(x, dim=1)[idx]).sum(-1), atol=1e-5)
    assert bool((sim[:, :-1] >= sim[:, 1:]).all())
    # tie-robust recall: found neighbours at least as close as the exact 10th
    recall = float((sim >= exact_sim[:, -1:] - 1e-6).float().mean())
    assert 0.9 <= recall <= 1.0, recall
    again_idx, _ = nearest_neighbours(x, 10, exact_limit=0)
    assert torch.equal(idx, again_idx)


@pytest.mark.parametrize("exact_limit", [None, 0])  # exact, probed
def test_nearest_neighbours_among_base_rows_only(exact_limit):
    x = torch.from_numpy(_clustered(n_clusters=10, per=30))
    base = torch.arange(len(x)) % 3 == 0
    idx, sim = nearest_neighbours(x, 5, base=base, exact_limit=exact_limit)
    assert idx.shape == (len(x), 5) and bool((idx >= 0).all())
    assert bool(base[idx].all()) and not (idx == torch.arange(len(x))[:, None]).any()
    few = torch.zeros(len(x), dtype=torch.bool)
    few[:3] = True  # three base rows: two neighbours at most (a base row is not its own)
    idx, sim = nearest_neighbours(x, 5, base=few, exact_limit=exact_limit)
    assert idx.shape == (len(x), 2) and set(idx.unique().tolist()) <= {0, 1, 2}
    assert idx[0].tolist() == [1, 2] or idx[0].tolist() == [2, 1]


def test_near_duplicate_groups_are_the_same_through_probed_neighbours(monkeypatch):
    rng = np.random.default_rng(4)
    base = _clustered(seed=5)
    twins = base[rng.integers(0, len(base), 300)] + rng.normal(size=(300, base.shape[1])).astype(np.float32) * 0.03
    x = np.concatenate([base, twins]).astype(np.float32)
    exact = near_duplicate_groups(x, 0.9)
    monkeypatch.setattr(neighbours, "EXACT_LIMIT", 0)
    probed = near_duplicate_groups(x, 0.9)
    assert len(np.unique(exact)) < len(x)  # there are groups to find
    # the same partition (labels may be numbered differently)
    pairs = np.unique(np.stack([exact, probed], 1), axis=0)
    assert len(pairs) == len(np.unique(exact)) == len(np.unique(probed))


def _near_pairs(x, threshold=0.9):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    i, j = np.nonzero(np.triu(xn @ xn.T, 1) >= threshold)
    return i, j


def test_encode_gives_near_duplicates_one_level1_code_and_off_gives_the_nearest(catalog, trained):
    x, _ = catalog
    trained.model.config.assignment.near_duplicate_threshold = 0.0
    try:
        plain_all = encode(trained.model, x).codes
        # a chain of small steps from a product to one in another level-1 cell: each step is a
        # near-duplicate of the next, so the whole chain is one group
        far = int(np.flatnonzero(plain_all[:, 0] != plain_all[0, 0])[0])
        t = np.linspace(0, 1, 41, dtype=np.float32)[:, None]
        chain = (1 - t) * x[0] + t * x[far]
        chain /= np.linalg.norm(chain, axis=1, keepdims=True)
        plain = encode(trained.model, chain).codes
    finally:
        trained.model.config.assignment.near_duplicate_threshold = 0.9
    steps = (chain[:-1] * chain[1:]).sum(1)
    assert steps.min() >= 0.9
    assert len(set(plain[:, 0].tolist())) > 1  # nearest codewords split the chain
    grouped = encode(trained.model, chain).codes
    assert len(set(grouped[:, 0].tolist())) == 1
    # the group's code is the codeword nearest its mean latent
    with torch.no_grad():
        mean = trained.model.latent(torch.from_numpy(chain)).double().mean(0, keepdim=True)
        expected = torch.cdist(mean, trained.model.quantizer.codebooks[0].double()).argmin().item()
    assert grouped[0, 0] == expected


def test_keep_codewords_used_moves_a_group_onto_a_codeword_it_would_empty():
    # rows 0-1 alone on codeword 0; group 7 (rows 2-4) nearest 1, 1, 0 was put on 0, emptying 1
    nearest = np.array([0, 0, 1, 1, 0, 2])
    assigned = np.array([0, 0, 0, 0, 0, 2])
    groups = np.array([0, 1, 7, 7, 7, 5])
    assert keep_codewords_used(nearest, assigned, groups).tolist() == [0, 0, 1, 1, 1, 2]
    # a group whose move would empty the codeword it leaves stays
    assert keep_codewords_used(nearest[2:], assigned[2:], groups[2:]).tolist() == [0, 0, 0, 2]
    # a group that follows earlier near-duplicates' codes stays
    fixed = np.array([False, False, True, False, False, False])
    assert keep_codewords_used(nearest, assigned, groups, fixed=fixed).tolist() == assigned.tolist()


def test_keep_codewords_used_picks_the_group_with_most_members_nearest_the_codeword():
    nearest = np.array([0, 0, 3, 0, 3, 3, 0])
    assigned = np.array([0, 0, 0, 0, 0, 0, 0])
    groups = np.array([0, 1, 2, 2, 4, 4, 4])  # group 4 has two rows nearest 3, group 2 one
    assert keep_codewords_used(nearest, assigned, groups).tolist() == [0, 0, 0, 0, 3, 3, 3]


def test_encode_keeps_a_level1_codeword_that_only_a_group_was_nearest_to(catalog, trained):
    x, _ = catalog
    model = trained.model
    model.config.assignment.near_duplicate_threshold = 0.0
    try:
        plain_all = encode(model, x).codes
        far = int(np.flatnonzero(plain_all[:, 0] != plain_all[0, 0])[0])
        t = np.linspace(0, 1, 41, dtype=np.float32)[:, None]
        chain = (1 - t) * x[0] + t * x[far]
        chain /= np.linalg.norm(chain, axis=1, keepdims=True)
        nearest = encode(model, chain).codes[:, 0]
    finally:
        model.config.assignment.near_duplicate_threshold = 0.9
    assert len(set(nearest.tolist())) == 2  # the chain spans two level-1 cells
    # alone, the chain is the only holder of both: it stays on the codeword nearest its mean
    grouped = encode(model, chain).codes[:, 0]
    kept = int(grouped[0])
    other = int(next(c for c in set(nearest.tolist()) if c != kept))
    # a product far from the chain (cosine < 0.9 to all of it) whose nearest is the group's codeword
    rng = np.random.default_rng(0)
    model.config.assignment.near_duplicate_threshold = 0.0
    try:
        for _ in range(200):
            r = rng.standard_normal(x.shape[1]).astype(np.float32)
            p = x[0] + 0.8 * np.linalg.norm(x[0]) * r / np.linalg.norm(r)
            p /= np.linalg.norm(p)
            if (chain @ p).max() < 0.85 and encode(model, p[None]).codes[0, 0] == kept:
                break
        else:
            pytest.fail("no product far from the chain on its codeword")
    finally:
        model.config.assignment.near_duplicate_threshold = 0.9
    codes = encode(model, np.vstack([chain, p[None]])).codes[:, 0]
    # the codeword keeps that product; the group moves to the other one, which it alone was nearest to
    assert codes[-1] == kept and set(codes[:-1].tolist()) == {other}


def test_new_rows_follow_the_level1_code_of_their_coded_near_duplicates(catalog, trained):
    x, _ = catalog
    hints = np.full(3, -1)
    hints[1] = 5
    rows = x[[0, 1, 200]]  # 0 and 1 are near-duplicates (same leaf), 200 is elsewhere
    assert _near_pairs(rows)[0].tolist() == [0]
    codes = encode(trained.model, rows, first_code_hints=hints).codes
    assert codes[0, 0] == codes[1, 0] == 5
    assert codes[2, 0] == encode(trained.model, rows[2:]).codes[0, 0]


# -- metrics


def test_metrics_on_a_toy_case_with_known_answers():
    # Four products: two identical (a, a'), one near them (b), one far (c).
    x = np.array([[1, 0, 0], [1, 0, 0], [0.95, 0.3122499, 0], [0, 0, 1]], np.float32)
    codes = np.array([[1, 2], [1, 2], [1, 3], [1, 3]])  # c collides with nothing; b shares l1
    tax = np.array([[0, 0], [0, 0], [0, 1], [1, 2]])
    m = intrinsic_metrics(x, codes, tax, n_pairs=200, knn=1, codebook_sizes=(4, 4))
    # cos >= 0.9 pairs: (a, a') cos 1, (a, b), (a', b) cos 0.95 -> all share l1; 1/3 share both.
    assert m["high_sim_pairs"] == 3
    assert m["high_sim_same_l1"] == 1.0
    assert m["high_sim_same_full"] == pytest.approx(1 / 3)
    assert m["high_sim_distinct_pairs"] == 2
    # (a, a') share their code but are the same text: not a collision. (b, c) are a collision.
    assert m["collision_rate_raw"] == 1.0
    assert m["collision_rate"] == 0.5
    assert m["utilization_l1"] == 0.25 and m["perplexity_l1"] == pytest.approx(1.0)
    assert m["utilization_l2"] == 0.5 and m["perplexity_l2"] == pytest.approx(2.0)
    assert m["purity_l1"] == 0.75  # one level-1 cluster, majority top category 0
    assert m["nmi_l1"] == pytest.approx(0.0)


def test_row_ids_number_equal_rows_alike_as_unique_rows_does():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 24)).astype(np.float32)
    x[2000:] = x[rng.integers(0, 2000, 1000)]  # a third are copies of earlier rows
    x[5, 7] = np.nextafter(x[5, 7], np.float32(9))  # one bit away from its original: a row of its own
    codes = rng.integers(0, 3, (3000, 3))
    for rows in (x, codes, codes.astype(np.int16)):
        ids, expected = row_ids(rows), np.unique(rows, axis=0, return_inverse=True)[1].ravel()
        assert ids.min() == 0 and ids.max() == expected.max()  # 0 .. distinct - 1
        assert len(np.unique(np.stack([ids, expected], 1), axis=0)) == expected.max() + 1  # the same partition
    # The collision rates against their definition, product by product.
    real, raw = collision_rates(x, codes)
    same_code = (codes[:, None] == codes[None]).all(2) & ~np.eye(3000, dtype=bool)
    other_vector = (x[:, None] != x[None]).any(2)
    assert raw == same_code.any(1).mean()
    assert real == (same_code & other_vector).any(1).mean()


def test_neighbours_are_the_exact_nearest_and_every_close_pair_once():
    x = np.random.default_rng(4).normal(size=(600, 16)).astype(np.float32)
    x[300:310] = x[:10] * 1.01  # cosine 1 pairs: 4 with an anchor (0, 3, 6, 9), (300, 0) counted once
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    anchors = np.arange(0, 600, 3)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    knn_idx, hi_i, hi_j = _neighbours(x, anchors, 5, chunk=64, device=device)
    sim = x[anchors] @ x.T
    sim[np.arange(len(anchors)), anchors] = -np.inf
    found_sims = np.take_along_axis(sim, knn_idx, 1)  # the 5 most similar, up to rounding of near ties
    assert np.allclose(found_sims, -np.sort(-sim, axis=1)[:, :5], atol=1e-6)
    anchor_set = set(anchors.tolist())
    expected = {(int(a), int(j)) for r, a in enumerate(anchors) for j in np.flatnonzero(sim[r] >= 0.9)
                if j not in anchor_set or j > a}
    found = list(zip(np.concatenate(hi_i).tolist(), np.concatenate(hi_j).tolist()))
    assert len(found) == len(set(found)) and set(found) == expected and len(expected) == 4


def test_spearman_is_one_when_shared_levels_follow_cosine():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(8, 16)) * 5
    sub = rng.normal(size=(8, 4, 16))
    x, codes = [], []
    for c in range(8):
        for s in range(4):
            for _ in range(5):
                x.append(centers[c] + sub[c, s] + rng.normal(size=16) * 0.05)
                codes.append([c, s])
    x = np.asarray(x, np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    m = intrinsic_metrics(x, np.asarray(codes), n_pairs=4000, knn=10)
    assert m["spearman"] > 0.8
    shuffled = rng.permutation(np.asarray(codes))
    assert intrinsic_metrics(x, shuffled, n_pairs=4000, knn=10)["spearman"] < 0.2
    assert all(isinstance(v, (int, float)) or v is None for v in m.values())


# -- ids


def test_code_string_joins_levels_with_underscores():
    assert code_string(np.array([6, 19, 32, 63])) == "6_19_32_63"
    assert code_string((0,)) == "0"


def test_disambiguation_tokens_are_append_only():
    keys = ["1_2", "1_2", "3_4", "1_2"]
    first = disambiguate(keys)
    assert first == [0, 1, 0, 2]
    # Product 1 left; a new product 4 joins code 1_2 and takes the freed token 1, while the
    # products that already hold tokens keep theirs.
    keys2 = ["1_2", "3_4", "1_2", "1_2", "3_4"]
    existing = {0: 0, 1: 0, 2: 2}  # positions in keys2 of products 0, 2, 3 of the first call
    second = disambiguate(keys2, existing)
    assert second[:3] == [0, 0, 2]
    assert second[3] == 1 and second[4] == 1
    full_ids = {(k, t) for k, t in zip(keys2, second)}
    assert len(full_ids) == len(keys2)


def test_disambiguation_rejects_a_token_held_twice():
    with pytest.raises(ValueError, match="held twice"):
        disambiguate([(1, 2), (1, 2)], {0: 0, 1: 0})


def test_side_by_side_weighs_the_extra_half_and_keeps_unit_rows():
    from quantizer.core.inputs import side_by_side

    rng = np.random.default_rng(0)
    text = rng.normal(size=(5, 6))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    extra = rng.normal(size=(5, 3))
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    extra[4] = 0.0  # a product never bought with another

    alike, heavy = side_by_side(text, extra), side_by_side(text, extra, weight=3.0)
    assert np.allclose(alike, np.hstack([text, extra]) / np.sqrt(2))
    assert np.allclose(np.linalg.norm(heavy[:4], axis=1), 1.0)
    assert np.allclose((heavy[:4, 6:] ** 2).sum(1), 0.9)  # the extra half's share: 9 / (1 + 9)
    assert np.allclose(heavy[4, :6], text[4] / np.sqrt(10)) and not heavy[4, 6:].any()
