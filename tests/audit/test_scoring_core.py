"""The mislabel-scoring core on tiny generated catalogs: no database, seconds to run."""

import json
from dataclasses import replace

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from audit.core import (
    Calibrator,
    CodePrefixes,
    Combiner,
    ScoringConfig,
    calibrate,
    cluster_evidence,
    expected_calibration_error,
    inject_noise,
    leaf_classes,
    score_products,
    taxonomy_issues,
)
from audit.core.calibration import catalog_suspects, fit_calibrator
from audit.core.scoring import rescore
from audit.core.signals import WEIGHT_DECAY_GRID, choose_weight_decay

THREE_FOLDS = ScoringConfig(n_folds=3)


def clustered_catalog(seed=0, per_leaf=30, dim=16):
    """2 departments x 2 aisles x 2 leaves; leaf centres near their siblings; codes follow content.

    Taxonomy ids: column 0 in 0..1, column 1 in 10..13, column 2 in 100..107 (unique per column).
    """
    rng = np.random.default_rng(seed)
    dept_c = rng.normal(size=(2, dim)) * 3
    aisle_c = dept_c.repeat(2, 0) + rng.normal(size=(4, dim)) * 1.5
    leaf_c = aisle_c.repeat(2, 0) + rng.normal(size=(8, dim)) * 1.0
    leaf = np.repeat(np.arange(8), per_leaf)
    emb = leaf_c[leaf] + rng.normal(size=(len(leaf), dim)) * 0.35
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    taxonomy = np.stack([leaf // 4, 10 + leaf // 2, 100 + leaf], axis=1).astype(np.int64)
    codes = np.stack([leaf // 4, leaf // 2, leaf, rng.integers(0, 3, len(leaf))], axis=1).astype(np.int64)
    return emb, taxonomy, codes


def plant_mislabels(taxonomy, n=6, seed=1):
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(taxonomy), n, replace=False)
    noisy = taxonomy.copy()
    leaf_rows = np.unique(taxonomy, axis=0)
    for i in chosen:
        others = leaf_rows[leaf_rows[:, 2] != taxonomy[i, 2]]
        noisy[i] = others[rng.integers(len(others))]
    return noisy, chosen


@pytest.fixture(scope="module")
def scored():
    emb, taxonomy, codes = clustered_catalog()
    noisy, planted = plant_mislabels(taxonomy)
    scores = score_products(embeddings=emb, taxonomy=noisy, codes=codes, config=THREE_FOLDS, seed=0)
    return emb, taxonomy, noisy, codes, planted, scores


def test_planted_mislabels_rank_at_the_top(scored):
    *_, planted, scores = scored
    top = np.argsort(-scores.raw_score)[: len(planted)]
    assert set(top) == set(planted)
    assert ((scores.raw_score >= 0) & (scores.raw_score <= 1)).all()


def test_suggestion_recovers_the_true_leaf(scored):
    _, taxonomy, _, _, planted, scores = scored
    assert (scores.suggested[planted] == taxonomy[planted, 2]).all()
    assert (scores.suggested_path[planted] == taxonomy[planted]).all()


def test_each_signal_alone_is_reported(scored):
    *_, planted, scores = scored
    assert set(scores.components) == {"classifier", "codes", "knn"}
    for component in scores.components.values():
        assert component[planted].mean() > np.delete(component, planted).mean()


def test_calibrator_is_monotone_in_unit_interval_and_round_trips_through_json(scored):
    emb, _, noisy, codes, _, scores = scored
    cal = calibrate(embeddings=emb, taxonomy=noisy, codes=codes, combiner=scores.combiner, rate=0.05, seed=3)
    grid = np.linspace(-0.5, 1.5, 201)
    p = cal.predict(grid)
    assert ((p >= 0) & (p <= 1)).all()
    assert (np.diff(p) >= -1e-12).all()
    again = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_allclose(again.predict(grid), p)
    combiner = Combiner.from_dict(json.loads(json.dumps(scores.combiner.to_dict())))
    rescored = score_products(embeddings=emb, taxonomy=noisy, codes=codes, config=THREE_FOLDS, combiner=combiner)
    np.testing.assert_allclose(rescored.raw_score, scores.raw_score, atol=1e-6)


def test_confidence_keeps_every_distinction_of_the_raw_score():
    rng = np.random.default_rng(1)
    raw = np.r_[rng.random(5000), 0.0, 1.0, rng.random(50)]  # plateaus of the isotonic fit, and the ends
    injected = rng.random(len(raw)) < raw**4
    cal = fit_calibrator(raw, injected, correct_for_unknown_errors=False)  # the indicator is the whole truth here
    order = np.argsort(raw)
    p = cal.predict(raw)
    assert len(np.unique(p)) == len(np.unique(raw)) == len(raw)
    assert (np.diff(p[order]) > 0).all()
    plain = IsotonicRegression(out_of_bounds="clip").fit(raw, injected)
    assert len(np.unique(plain.predict(raw))) < 100  # what a step function would have exported
    assert expected_calibration_error(p, injected) < 0.03


def test_rescore_with_another_raw_score_ranks_anew_without_refitting(scored):
    *_, scores = scored
    names = scores.combiner.feature_names
    alone = rescore(scores, replace(scores.combiner, score=("classifier:margin",)))
    margin = scores.features[:, names.index("classifier:margin")]
    labelled = scores.labels >= 0
    np.testing.assert_allclose(alone.raw_score[labelled], 1.0 / (1.0 + np.exp(-margin[labelled])))
    np.testing.assert_array_equal(alone.suggested, scores.suggested)  # the score ranks; it does not move fixes
    same = rescore(scores, scores.combiner)
    np.testing.assert_array_equal(same.raw_score, scores.raw_score)


def test_a_small_catalog_gets_more_regularised_classifiers_than_a_large_one():
    chosen = {}
    for per_leaf in (20, 600):
        emb, taxonomy, _ = clustered_catalog(per_leaf=per_leaf, dim=64)
        emb = emb + 0.15 * np.random.default_rng(0).normal(size=emb.shape).astype(np.float32)
        leaf_paths, labels = leaf_classes(taxonomy)
        chosen[per_leaf] = choose_weight_decay(emb, labels, len(leaf_paths), n_folds=3)
    assert set(chosen.values()) <= set(WEIGHT_DECAY_GRID)
    assert chosen[20] >= 8e-3 and chosen[600] <= 1e-3


def test_calibrator_divides_out_errors_it_was_not_told_about():
    rng = np.random.default_rng(0)
    raw = rng.random(2000)
    wrong = raw > 0.9  # every label above 0.9 is wrong, but only half were injected on purpose
    injected = wrong & (rng.random(2000) < 0.5)
    assert fit_calibrator(raw, injected, correct_for_unknown_errors=True).predict([0.97])[0] > 0.9
    assert fit_calibrator(raw, injected).predict([0.97])[0] < 0.7


def test_the_catalogs_own_suspects_leave_the_calibration_fit():
    rng = np.random.default_rng(0)
    raw = rng.random(2000)
    wrong = raw > 0.9  # every label above 0.9 is wrong, but only half were moved in the copy
    injected = wrong & (rng.random(2000) < 0.5)
    suspects = catalog_suspects(raw, np.zeros(2000, int), int(injected.sum()))  # the top-scored, as many as moved
    assert suspects.sum() == injected.sum() and raw[suspects].min() > raw[~suspects].max()
    assert fit_calibrator(raw, injected, suspects=suspects).predict([0.97])[0] > 0.9
    assert fit_calibrator(raw, injected).predict([0.97])[0] < 0.7
    assert fit_calibrator(raw, injected, suspects=suspects).predict([0.3])[0] < 0.05
    unlabelled = np.zeros(2000, int)
    unlabelled[np.argmax(raw)] = -1  # an uncategorized product is nobody's suspect
    assert not catalog_suspects(raw, unlabelled, 5)[np.argmax(raw)]


def test_cluster_evidence_backs_off_to_a_coarser_prefix_when_the_deep_one_is_small():
    codes = np.array([[1, 2, 3, 0]] * 2 + [[1, 2, 4, 0]] * 4 + [[5, 0, 0, 0]] * 6)
    labels = np.array([7, 8, 7, 7, 7, 9, 9, 9, 9, 9, 9, 9])
    ev = cluster_evidence(codes, labels, 0, min_cluster=5)
    assert ev == {"prefix": "1_2", "level": 2, "size": 6, "composition": [[7, 4], [8, 1], [9, 1]]}
    deep = cluster_evidence(codes, labels, 0, min_cluster=2)
    assert deep["prefix"] == "1_2_3_0" and deep["level"] == 4 and deep["size"] == 2


def test_grouped_prefixes_give_every_product_the_cluster_evidence_of_a_scan():
    rng = np.random.default_rng(3)
    # skewed codes: big and tiny clusters at every level, so the back-off stops at each of them somewhere
    codes = np.stack([rng.zipf(1.6, 3000) % 7, rng.integers(0, 3, 3000), rng.zipf(1.3, 3000) % 50,
                      rng.integers(0, 4, 3000)], 1)
    labels = rng.integers(-1, 12, 3000)
    prefixes = CodePrefixes(codes)
    for min_cluster in (1, 5, 40, 200):
        assert [cluster_evidence(codes, labels, i, min_cluster, prefixes) for i in range(len(codes))] == [
            cluster_evidence(codes, labels, i, min_cluster) for i in range(len(codes))]
    levels = {cluster_evidence(codes, labels, i, m, prefixes)["level"] for i in range(len(codes)) for m in (5, 200)}
    assert levels == {1, 2, 3, 4}


def test_evidence_names_cluster_neighbours_and_suggestions(scored):
    _, _, _, codes, planted, scores = scored
    ev = scores.evidence(int(planted[0]), codes)
    assert ev["cluster"]["size"] >= 5
    assert len(ev["neighbours"]) == 10 and ev["neighbours"][0][1] >= ev["neighbours"][-1][1]
    assert ev["suggestions"][0][0] == scores.suggested[planted[0]]


def test_evidence_signals_say_how_strongly_each_signal_calls_the_label_wrong(scored):
    """What the flag page and the API show under "signals": high for a planted mislabel, low for a product
    whose label every signal agrees with."""
    _, _, _, codes, planted, scores = scored
    mislabel = scores.evidence(int(planted[0]), codes)["signals"]
    right = int(np.argmin(scores.raw_score))
    kept = scores.evidence(right, codes)["signals"]
    assert set(mislabel) == set(scores.components) == set(kept)
    assert min(mislabel.values()) > 0.5 > max(kept.values())
    assert mislabel == {s: round(float(c[planted[0]]), 4) for s, c in scores.components.items()}


@pytest.mark.parametrize("regime", ["uniform", "sibling", "lookalike", "brand"])
def test_noise_regimes_move_whole_paths_at_the_requested_rate(regime):
    emb, taxonomy, _ = clustered_catalog(per_leaf=50)
    brands = np.array([f"brand{i % 40}" for i in range(len(taxonomy))])
    noisy, injected = inject_noise(taxonomy, regime, rate=0.05, seed=4, embeddings=emb, brands=brands)
    valid_paths = {tuple(r) for r in taxonomy}
    assert all(tuple(r) in valid_paths for r in noisy)  # consistent multi-level paths
    assert (noisy[injected, 2] != taxonomy[injected, 2]).all()
    assert (noisy[~injected] == taxonomy[~injected]).all()
    expected = 0.05 * len(taxonomy)
    if regime == "brand":
        assert expected * 0.8 <= injected.sum() <= expected * 1.6
        moved_brands = set(brands[injected])
        for b in moved_brands:  # one destination per brand
            assert len({tuple(r) for r in noisy[injected & (brands == b)]}) == 1
    else:
        assert injected.sum() == round(expected)
    if regime == "sibling":
        assert (noisy[injected, 1] == taxonomy[injected, 1]).all()


def test_unlabeled_products_get_a_suggestion_and_the_top_score():
    emb, taxonomy, codes = clustered_catalog(seed=2, per_leaf=20)
    noisy = taxonomy.copy()
    unlabeled = np.array([3, 45, 130])
    noisy[unlabeled] = -1
    scores = score_products(embeddings=emb, taxonomy=noisy, codes=codes, config=THREE_FOLDS)
    assert (scores.raw_score[unlabeled] == 1.0).all()
    assert (scores.suggested[unlabeled] == taxonomy[unlabeled, 2]).all()
    assert scores.evidence(int(unlabeled[0]), codes)["signals"] == {}  # no label for a signal to call wrong
    _, labels = leaf_classes(noisy)
    assert (labels[unlabeled] == -1).all()


def test_taxonomy_issues_name_the_categories_the_codes_merge():
    emb, taxonomy, codes = clustered_catalog(seed=3)
    codes = codes.copy()
    merged = np.isin(taxonomy[:, 2], [100, 101])
    codes[merged, 2] = 0  # codes cannot tell leaves 100 and 101 apart
    codes[merged, 3] = np.arange(merged.sum()) % 3
    scores = score_products(embeddings=emb, taxonomy=taxonomy, codes=codes, config=THREE_FOLDS)
    a, b, overlap, n = taxonomy_issues(scores, top=3)[0]
    assert {a, b} == {100, 101} and overlap > 0 and n > 0


def branded_catalog(seed=0, brands_per_leaf=6, per_brand=5, dim=16):
    """``clustered_catalog`` where each leaf holds a few brands; a brand's products share a direction
    (as a brand name in the product text does), so the brand's other products are its nearest ones."""
    emb, taxonomy, codes = clustered_catalog(seed=seed, per_leaf=brands_per_leaf * per_brand, dim=dim)
    rng = np.random.default_rng(seed + 1)
    brand_index = np.arange(len(taxonomy)) // per_brand
    emb = emb + 0.6 * rng.normal(size=(brand_index.max() + 1, dim))[brand_index] / np.sqrt(dim)
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    codes = codes.copy()
    codes[:, 3] = brand_index % 3
    return emb, taxonomy, codes, np.array([f"Brand {b}" for b in brand_index], dtype=object)


def test_a_brand_moved_together_ranks_near_the_top_and_gets_its_true_leaf_only_with_brands():
    emb, taxonomy, codes, brands = branded_catalog(brands_per_leaf=4, per_brand=10)
    moved = np.flatnonzero(brands == "Brand 0")  # leaf 100 (department 0) -> leaf 107 (department 1)
    noisy = taxonomy.copy()
    noisy[moved] = taxonomy[taxonomy[:, 2] == 107][0]
    budget = 2 * len(moved)  # 20 of 320 products
    with_brands = score_products(embeddings=emb, taxonomy=noisy, codes=codes, config=THREE_FOLDS, brands=brands)
    assert set(moved) <= set(np.argsort(-with_brands.raw_score)[:budget])
    assert (with_brands.suggested[moved] == 100).all()  # the brand's true leaf, not the wrong one it shares
    assert with_brands.extra["brand_led"][moved].all()
    assert with_brands.evidence(moved[0], codes)["brand_led"] is True
    assert with_brands.evidence(int(np.flatnonzero(brands == "Brand 5")[0]), codes)["brand_led"] is False
    assert "brand_out" in with_brands.components
    without = score_products(embeddings=emb, taxonomy=noisy, codes=codes, config=THREE_FOLDS)
    assert not set(moved) <= set(np.argsort(-without.raw_score)[:budget])
    # (Its suggestion may still be right: a fix is never the product's own, wrong, category.)
    assert "brand_out" not in without.components


def test_a_brand_combiner_round_trips_and_needs_brands_to_rescore():
    emb, taxonomy, codes, brands = branded_catalog(seed=1)
    scores = score_products(embeddings=emb, taxonomy=taxonomy, codes=codes, config=THREE_FOLDS, brands=brands)
    combiner = Combiner.from_dict(json.loads(json.dumps(scores.combiner.to_dict())))
    rescored = score_products(embeddings=emb, taxonomy=taxonomy, codes=codes, config=THREE_FOLDS, brands=brands,
                              combiner=combiner)
    np.testing.assert_allclose(rescored.raw_score, scores.raw_score, atol=1e-6)
    with pytest.raises(ValueError, match="needs brands"):
        score_products(embeddings=emb, taxonomy=taxonomy, codes=codes, config=THREE_FOLDS, combiner=combiner)


def test_the_suggested_fix_is_never_the_products_own_category():
    emb, taxonomy, codes = clustered_catalog()
    scores = score_products(embeddings=emb, taxonomy=taxonomy, codes=codes, config=THREE_FOLDS)
    labelled = scores.labels >= 0
    assert (scores.suggested[labelled] != scores.label_ids()[labelled]).all()
    own = scores.label_ids()[0]
    assert own not in [leaf for leaf, _ in scores.top_suggestions(0)]
    # On a clean catalog the own category is still the most probable one.
    assert (scores.probs.leaves[labelled, 0] == scores.labels[labelled]).mean() > 0.9


def worded_catalog(seed=0, per_leaf=30, dim=16):
    """The clustered catalog's taxonomy, but embeddings and codes that say nothing about the leaf;
    only the product names do (each leaf has its own words, with filler words shared by all)."""
    _, taxonomy, _ = clustered_catalog(seed, per_leaf, dim)
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(len(taxonomy), dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    codes = rng.integers(0, 4, size=(len(taxonomy), 4))
    fillers = ["fresh", "pack", "classic", "organic", "family", "value"]
    nouns = ["olive", "basil", "cheddar", "yogurt", "lentil", "quinoa", "cocoa", "ginger"]
    texts = [f"{rng.choice(fillers)} {nouns[leaf - 100]} {rng.choice(fillers)}" for leaf in taxonomy[:, 2]]
    return emb, taxonomy, codes, texts


def test_product_words_find_mislabels_the_embeddings_cannot():
    from sklearn.metrics import average_precision_score

    emb, taxonomy, codes, texts = worded_catalog()
    noisy, planted = plant_mislabels(taxonomy, n=8)
    truth = np.zeros(len(taxonomy), bool)
    truth[planted] = True
    blind = score_products(embeddings=emb, taxonomy=noisy, codes=codes, config=THREE_FOLDS)
    worded = score_products(embeddings=emb, taxonomy=noisy, codes=codes, config=THREE_FOLDS, texts=texts)
    assert average_precision_score(truth, worded.raw_score) > 0.6
    assert average_precision_score(truth, blind.raw_score) < 0.2
    # and the suggested fix is the leaf the words name
    assert (worded.suggested[planted] == taxonomy[planted, 2]).mean() >= 0.75


def test_text_features_are_deterministic_unit_rows_and_none_without_words():
    from audit.core.signals import text_features, text_terms

    *_, texts = worded_catalog()
    a, b = text_features(texts, dims=8), text_features(texts, dims=8)
    assert a.shape == (len(texts), 8)
    np.testing.assert_array_equal(a, b)
    terms = text_terms(texts)  # counted apart (the pipeline counts them beside its training): the same features
    np.testing.assert_array_equal(text_features(texts, dims=8, terms=terms), a)
    with pytest.raises(ValueError, match="rows for"):
        text_features(texts[:-1], dims=8, terms=terms)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert text_features(["", "", ""]) is None
    emb, taxonomy, codes, _ = worded_catalog()
    with pytest.raises(ValueError, match="one entry per product"):
        score_products(embeddings=emb, taxonomy=taxonomy, codes=codes, config=THREE_FOLDS, texts=texts[:-1])


def test_text_features_counted_in_several_processes_are_the_same_bit_for_bit():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from audit.core.signals import TEXT_ANALYZERS, text_features, tfidf_matrix

    *_, texts = worded_catalog()
    texts = ["", ""] + list(texts) + ["", "only-once"]  # a slice of empty texts; a term in one text only
    for analyzer in TEXT_ANALYZERS:
        one = tfidf_matrix(texts, analyzer, 1)
        reference = TfidfVectorizer(**analyzer, min_df=2, sublinear_tf=True).fit_transform(texts)
        assert one.shape == reference.shape and abs(one - reference).max() < 1e-15  # scikit-learn's, up to rounding
        for workers in (2, 3, 7):
            many = tfidf_matrix(texts, analyzer, workers)
            for part in ("indptr", "indices", "data"):
                np.testing.assert_array_equal(getattr(many, part), getattr(one, part))
    np.testing.assert_array_equal(text_features(texts, dims=8, workers=3), text_features(texts, dims=8, workers=1))
    assert tfidf_matrix(["a b", "c d", "", "e"], TEXT_ANALYZERS[0], 2) is None  # no term in two texts


def test_text_features_fitted_on_a_sample_project_every_text_and_keep_who_is_alike():
    from audit.core.signals import text_features

    _, taxonomy, _, texts = worded_catalog()
    full = text_features(texts, dims=16)
    sampled = text_features(texts, dims=16, max_fit=len(texts) // 4)
    assert sampled.shape == full.shape
    np.testing.assert_array_equal(sampled, text_features(texts, dims=16, max_fit=len(texts) // 4))
    np.testing.assert_allclose(np.linalg.norm(sampled, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(sampled, full)  # the sample's basis, not the catalog's
    same = np.array(texts)[:, None] == np.array(texts)[None, :]
    np.testing.assert_allclose((sampled @ sampled.T)[same], 1.0, atol=1e-5)  # equal texts, equal rows
    # the texts that resemble each other stay those that resemble each other
    iu = np.triu_indices(len(texts), 1)
    assert np.corrcoef((full @ full.T)[iu], (sampled @ sampled.T)[iu])[0, 1] > 0.95
    # and a product's nearest other text still names its leaf
    sims = sampled @ sampled.T
    np.fill_diagonal(sims, -np.inf)
    assert (taxonomy[sims.argmax(1), 2] == taxonomy[:, 2]).mean() > 0.95


def test_a_copy_scored_with_reuse_shares_text_features_and_neighbours_and_scores_the_same():
    emb, taxonomy, codes, texts = worded_catalog()
    catalog = score_products(embeddings=emb, taxonomy=taxonomy, codes=codes, config=THREE_FOLDS, texts=texts)
    noisy, _ = plant_mislabels(taxonomy, n=8)
    fresh = score_products(embeddings=emb, taxonomy=noisy, codes=codes, config=THREE_FOLDS, texts=texts,
                           combiner=catalog.combiner)
    reused = score_products(embeddings=emb, taxonomy=noisy, codes=codes, config=THREE_FOLDS, texts=texts,
                            combiner=catalog.combiner, reuse=catalog)
    assert reused.lexical is catalog.lexical and np.shares_memory(reused.neighbours, catalog.neighbours)
    np.testing.assert_array_equal(reused.raw_score, fresh.raw_score)
    np.testing.assert_array_equal(reused.suggested, fresh.suggested)
    # an unlabelled product changes who the neighbours can be: those are searched again
    unlabelled = noisy.copy()
    unlabelled[0] = -1
    again = score_products(embeddings=emb, taxonomy=unlabelled, codes=codes, config=THREE_FOLDS, texts=texts,
                           combiner=catalog.combiner, reuse=catalog)
    assert not np.shares_memory(again.neighbours, catalog.neighbours) and 0 not in again.neighbours
    with pytest.raises(ValueError, match="reuse= holds scores of"):
        score_products(embeddings=emb[:-1], taxonomy=noisy[:-1], codes=codes[:-1], config=THREE_FOLDS, reuse=catalog)


def _dense_code_probs(codes, labels, n_leaves, prior, code_prior):
    """The dense formula code_probs computed before it went sparse and row-chunked (the reference)."""
    from audit.core.signals import prefix_ids

    n, labelled = len(labels), labels >= 0
    p = np.broadcast_to(prior, (n, n_leaves)).astype(np.float64)
    for depth in range(1, codes.shape[1] + 1):
        groups = prefix_ids(codes, depth)
        counts = np.zeros((groups.max() + 1, n_leaves))
        np.add.at(counts, (groups[labelled], labels[labelled]), 1.0)
        own = counts[groups]
        own[np.flatnonzero(labelled), labels[labelled]] -= 1.0
        size = own.sum(1)
        p = (own + code_prior * p) / (size[:, None] + code_prior)
    return p.astype(np.float32), size


def test_code_probs_in_row_chunks_equal_the_dense_formula_bit_for_bit():
    from audit.core.signals import CODE_PRIOR, code_probs

    rng = np.random.default_rng(7)
    codes = rng.integers(0, 3, size=(500, 4))
    labels = rng.integers(-1, 12, size=500)
    prior = np.bincount(labels[labels >= 0], minlength=12) + 1.0
    prior = prior / prior.sum()
    expected, _ = _dense_code_probs(codes, labels, 12, prior, CODE_PRIOR)
    for chunk in (7, 8192):
        np.testing.assert_array_equal(code_probs(codes, labels, 12, prior, chunk=chunk), expected)


def test_best_other_skips_the_label_and_breaks_ties_by_the_lower_class():
    from audit.core.combine import best_other

    probs = np.array([[0.4, 0.3, 0.3], [0.2, 0.4, 0.4], [0.5, 0.25, 0.25]], np.float32)
    labels = np.array([0, 2, -1])
    assert best_other(probs, labels).tolist() == [1, 1, 0]
    assert best_other(probs, labels, k=2).tolist() == [[1, 2], [1, 0], [0, 1]]


def test_knn_probs_and_pooled_in_row_chunks_equal_the_whole_array_formulas():
    from audit.core.combine import EPS, pooled
    from audit.core.signals import KNN_PRIOR, KNN_TEMPERATURE, knn_probs

    rng = np.random.default_rng(8)
    n, k = 300, 9
    labels = rng.integers(-1, k, n)
    neighbours = rng.integers(0, n, (n, 5))
    neighbours[::7, -1] = -1  # padding where fewer were found
    sims = rng.uniform(0.2, 1.0, (n, 5)).astype(np.float32)
    prior = np.full(k, 1.0 / k)
    weights = np.exp((sims.astype(np.float64) - 1.0) / KNN_TEMPERATURE)
    votes = np.zeros((n, k))
    rows, cols = np.nonzero(neighbours >= 0)
    np.add.at(votes, (rows, labels[neighbours[rows, cols]]), weights[rows, cols])
    votes += KNN_PRIOR * prior
    expected = (votes / votes.sum(1, keepdims=True)).astype(np.float32)
    np.testing.assert_array_equal(knn_probs(neighbours, sims, labels, k, prior, chunk=7), expected)

    probs = {s: rng.dirichlet(np.ones(k), n).astype(np.float32) for s in ("a", "b", "c")}
    w = {"a": 0.7, "b": 0.2, "c": np.float64(0.4)}
    logq = sum(wt * np.log(probs[s] + EPS) for s, wt in w.items())
    q = np.exp(logq - logq.max(1, keepdims=True))
    # torch's log and exp may differ from numpy's in the last bit
    np.testing.assert_allclose(pooled(probs, w, chunk=7), (q / q.sum(1, keepdims=True)).astype(np.float32), rtol=1e-5)


def test_the_raw_score_is_the_pool_and_the_classifier_surprised_by_the_label(scored):
    *_, scores = scored
    names = scores.combiner.feature_names
    labelled = scores.labels >= 0
    p_label = [scores.signal_top["pooled"].label_prob[labelled],
               1.0 - scores.components["classifier"][labelled]]  # the pool's and the classifier's p(label)
    surprise = -np.log((p_label[0] + p_label[1]) / 2 + 1e-6)  # each column is -log(p + 1e-6)
    np.testing.assert_allclose(scores.raw_score[labelled], 1.0 / (1.0 + np.exp(-surprise)), rtol=1e-4)
    # one signal's doubt alone no longer decides: a mean of probabilities, not a sum of logs
    top = scores.combiner
    features = np.zeros((2, len(names)))
    features[:, [names.index(f) for f in top.score]] = [[0.0, 13.8], [5.0, 5.0]]  # p 1 and 1e-6; p 0.007 twice
    sure_and_wrong, both_doubt = top.raw_score(features)
    assert sure_and_wrong < both_doubt
    q = scores.signal_top["pooled"].label_prob[labelled]  # -log q(label) is the pool's column
    np.testing.assert_allclose(scores.features[labelled, names.index("pooled:self")], -np.log(q + 1e-6), rtol=1e-4)


@pytest.mark.parametrize("per_leaf, folds", [(30, 10), (4, 8), (2, 5)])
def test_the_classifier_holds_out_a_tenth_where_the_catalog_allows(per_leaf, folds):
    from audit.core.signals import compute_signals

    emb, taxonomy, codes = clustered_catalog(per_leaf=per_leaf)
    leaf_paths, labels = leaf_classes(taxonomy)
    config = ScoringConfig()
    sig = compute_signals(emb, labels, len(leaf_paths), codes, n_folds=config.n_folds, seed=0, device="cpu",
                          classifier_folds=config.classifier_folds_for(len(labels)), signals=("classifier",))
    model = sig.sources["classifier"].__self__
    assert model.n_folds == folds == len(np.unique(model.fold[labels >= 0]))


def test_a_large_catalog_keeps_five_classifier_folds():
    config = ScoringConfig()
    assert config.classifier_folds_for(config.classifier_folds_max_rows) == config.classifier_folds == 10
    assert config.classifier_folds_for(config.classifier_folds_max_rows + 1) == config.n_folds == 5


def test_prefix_ids_number_prefixes_in_lexicographic_order_whatever_the_codes():
    from audit.core.signals import prefix_ids

    rng = np.random.default_rng(9)
    for codes in (rng.integers(0, 256, (400, 4)), rng.integers(0, 2**40, (50, 3)),  # packed keys; too wide to pack
                  rng.integers(-1, 4, (60, 4))):  # a negative code falls back to the row-wise unique
        for depth in range(1, codes.shape[1] + 1):
            _, expected = np.unique(codes[:, :depth], axis=0, return_inverse=True)
            np.testing.assert_array_equal(prefix_ids(codes, depth), expected.reshape(-1))


def test_leaf_classes_and_centroid_neighbours_against_their_definitions():
    from audit.core.noise import leaf_centroid_neighbours

    rng = np.random.default_rng(8)
    leaf = rng.integers(0, 40, 3000)
    taxonomy = np.stack([leaf // 10, leaf // 4, leaf], 1)
    taxonomy[::7, 2] = -1  # paths of mixed depth
    taxonomy[::50] = -1  # unlabelled products
    leaf_paths, labels = leaf_classes(taxonomy)
    labelled = (taxonomy >= 0).any(1)
    expected_paths, expected = np.unique(taxonomy[labelled], axis=0, return_inverse=True)
    np.testing.assert_array_equal(leaf_paths, expected_paths)  # in the rows' lexicographic order
    np.testing.assert_array_equal(labels[labelled], expected.ravel())
    assert (labels[~labelled] == -1).all()

    x = rng.normal(size=(3000, 8)).astype(np.float32)
    k = len(leaf_paths)
    centroids = np.stack([x[labels == c].astype(np.float64).sum(0) for c in range(k)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    sims = centroids @ centroids.T
    np.fill_diagonal(sims, -np.inf)
    np.testing.assert_array_equal(leaf_centroid_neighbours(x, labels, k), sims.argmax(1))
    with_empty = leaf_centroid_neighbours(x, labels, k + 1)  # a leaf without products: none nearest to it
    assert with_empty[k] == -1 and (with_empty[:k] == sims.argmax(1)).all()


def test_brand_groups_are_the_brand_and_label_pairs_with_unbranded_products_alone():
    from audit.core.signals import brand_groups

    brands = np.array(["Acme", " acme ", "ACME", "Zeta", "", None, "Zeta", "Émile", "émile", "Acme"], dtype=object)
    labels = np.array([3, 3, 4, 3, 3, 3, 3, 1, 1, -1])
    group = brand_groups(labels, brands)
    key = [("" if b is None else b.strip().lower(), int(c)) for b, c in zip(brands, labels)]
    for i in range(len(labels)):
        for j in range(len(labels)):
            together = i == j or (key[i] == key[j] and key[i][0] != "" and labels[i] >= 0)
            assert (group[i] == group[j]) == together, (i, j)


def test_the_devices_svd_finds_the_subspace_scikit_learn_finds():
    """text_features' SVD on a GPU (randomized_svd_torch) is scikit-learn's algorithm with torch's draws."""
    from scipy.sparse import hstack
    from sklearn.decomposition import TruncatedSVD

    from audit.core.signals import TEXT_ANALYZERS, randomized_svd_torch, tfidf_matrix

    rng = np.random.default_rng(0)
    words = [f"w{i}x{i * 7 % 13}" for i in range(60)]
    zipf = 1.0 / np.arange(1, len(words) + 1)
    texts = [" ".join(rng.choice(words, size=rng.integers(2, 6), p=zipf / zipf.sum())) for _ in range(800)]
    tfidf = hstack([tfidf_matrix(texts, analyzer) for analyzer in TEXT_ANALYZERS]).tocsr()
    k = 24
    reference = TruncatedSVD(k, random_state=0).fit(tfidf)
    vectors = randomized_svd_torch(tfidf, k, seed=0).numpy()
    assert vectors.shape == (tfidf.shape[1], k)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(k), atol=1e-4)
    # the leading half of the directions lies in scikit-learn's subspace, and each captures the same variance
    np.testing.assert_allclose(np.linalg.svd(reference.components_ @ vectors[:, : k // 2], compute_uv=False), 1.0,
                               atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(tfidf @ vectors, axis=0), reference.singular_values_, rtol=1e-2)
    assert (vectors[np.abs(vectors).argmax(0), np.arange(k)] > 0).all()  # signs fixed
    np.testing.assert_array_equal(vectors, randomized_svd_torch(tfidf, k, seed=0).numpy())
    assert not np.allclose(vectors, randomized_svd_torch(tfidf, k, seed=1).numpy())


def test_classifier_fits_run_with_tf32_matmuls_and_restore_the_callers_setting():
    import torch

    from audit.core.signals import fit_softmax_regression, tf32_matmuls

    matmul = torch.backends.cuda.matmul
    saved = matmul.allow_tf32
    seen = []
    try:
        matmul.allow_tf32 = False
        x = torch.randn(40, 3)
        y = torch.arange(40) % 2
        with tf32_matmuls():
            seen.append(matmul.allow_tf32)
        seen.append(matmul.allow_tf32)
        w, b = fit_softmax_regression(x, y, 2, 1e-3, max_iter=5)
        seen.append(matmul.allow_tf32)
    finally:
        matmul.allow_tf32 = saved
    assert seen == [True, False, False]
    assert w.shape == (3, 2) and b.shape == (2,)
