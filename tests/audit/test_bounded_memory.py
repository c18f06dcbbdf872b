"""The audit in bounded memory: scored a few rows at a time, it flags and suggests as scored whole.

A catalog of up to BLOCK_CELLS / K products is one block, scored exactly as by whole arrays (every
catalog in the docs and the demo). Here a small catalog is scored in blocks of 37 rows as well: the
classifiers then predict each block's rows apart, and a matrix product over fewer rows may round its
last bit differently, so raw scores and probabilities are compared within float32 tolerance, and the
ranking, the suggestions, the evidence and the flags exactly.
"""

import numpy as np
import pytest

from audit.core import ScoringConfig, calibrate, score_products, taxonomy_issues
from audit.core.combine import best_other
from audit.core.top_leaves import TopLeaves
from tests.audit.test_scoring_core import branded_catalog, plant_mislabels

BLOCKS = ScoringConfig(n_folds=3, classifier_folds=3, block_rows=37)  # a catalog of 256 products
WHOLE = ScoringConfig(n_folds=3, classifier_folds=3)


@pytest.fixture(scope="module")
def both():
    emb, taxonomy, codes, brands = branded_catalog(seed=2, brands_per_leaf=4, per_brand=8)
    noisy, _ = plant_mislabels(taxonomy, n=10, seed=5)
    noisy[np.flatnonzero(brands == "Brand 3")] = taxonomy[taxonomy[:, 2] == 106][0]  # a brand moved together
    noisy[[4, 77, 150]] = -1
    texts = [f"{b} item{i % 7} leaf{t}" for i, (b, t) in enumerate(zip(brands, taxonomy[:, 2]))]
    args = dict(embeddings=emb, taxonomy=noisy, codes=codes, brands=brands, texts=texts, seed=0)
    whole = score_products(**args, config=WHOLE)
    blocks = score_products(**args, config=BLOCKS)
    return args, codes, whole, blocks


def test_blocks_give_the_same_ranking_suggestions_and_evidence(both):
    _, codes, whole, blocks = both
    assert whole.extra["brand_led"].any()  # the brand path is exercised
    np.testing.assert_allclose(blocks.raw_score, whole.raw_score, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(np.argsort(-blocks.raw_score, kind="stable"),
                                  np.argsort(-whole.raw_score, kind="stable"))
    np.testing.assert_array_equal(blocks.suggested, whole.suggested)
    np.testing.assert_array_equal(blocks.extra["brand_led"], whole.extra["brand_led"])
    np.testing.assert_allclose(blocks.suggested_prob, whole.suggested_prob, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(blocks.features, whole.features, rtol=1e-5, atol=1e-6)
    for i in range(0, len(codes), 11):
        a, b = whole.evidence(i, codes), blocks.evidence(i, codes)
        assert [s[0] for s in a.pop("suggestions")] == [s[0] for s in b.pop("suggestions")]
        assert a.pop("signals").keys() == b.pop("signals").keys()
        assert a == b  # cluster, neighbours, brand_led
    assert [t[:2] for t in taxonomy_issues(whole)] == [t[:2] for t in taxonomy_issues(blocks)]


def test_blocks_give_the_same_flags_after_calibration(both):
    args, _, whole, blocks = both
    flags = []
    for scores, config in ((whole, WHOLE), (blocks, BLOCKS)):
        cal = calibrate(**{**args, "seed": 1}, combiner=scores.combiner, config=config, reuse=scores)
        confidence = cal.predict(scores.raw_score)
        flags.append(set(np.flatnonzero((confidence >= 0.5) | (scores.labels < 0))))
    assert flags[0] == flags[1] and len(flags[0]) > 3


def test_top_leaves_read_what_the_whole_distribution_gives_ties_included():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(40), 300).astype(np.float32)
    probs[:50, 5:25] = 0.01  # ties across the kept boundary
    probs[50:60] = 1.0 / 40  # all tied
    labels = rng.integers(-1, 40, 300)
    top = TopLeaves.of(probs, labels, k=8, chunk=33)
    for k in (1, 3, 7):
        leaves, values = top.best_others(labels, k)
        expected = best_other(probs, labels, k=k).reshape(len(labels), -1)
        np.testing.assert_array_equal(leaves, expected)
        np.testing.assert_array_equal(values, np.take_along_axis(probs, expected, 1))
    np.testing.assert_array_equal(top.label_prob, probs[np.arange(300), np.maximum(labels, 0)])
    with pytest.raises(ValueError, match="at most 7 others"):
        top.best_others(labels, 8)
    small = rng.dirichlet(np.ones(3), 20).astype(np.float32)  # K = 3: every leaf kept, the label comes last
    small_labels = rng.integers(0, 3, 20)
    np.testing.assert_array_equal(TopLeaves.of(small, small_labels).best_others(small_labels, 3)[0],
                                  best_other(small, small_labels, k=3))
