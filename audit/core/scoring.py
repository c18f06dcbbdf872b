"""Mislabel scoring: how strongly a product's code neighbourhood, nearest neighbours and an
out-of-fold classifier disagree with its label. The entry point, ``score_products``, runs the
signals (``signals.py``), pools them into a suggestion and a raw score (``combine.py``) and returns
``Scores``, which also gives a flag's evidence (``evidence.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from audit.core.combine import Combiner, best_other, fit_pool_weights, pooled, suspicion_features
from audit.core.evidence import MIN_CLUSTER, SUGGESTIONS, cluster_evidence, neighbour_evidence
from audit.core.noise import leaf_classes, parent_groups
from audit.core.signals import (
    CLASSIFIER_MAX_ITER, KNN, MIN_LABELLED_PER_FOLD, SIGNALS, compute_signals, has_brands, text_features,
)
from audit.core.signals import WEIGHT_DECAY_GRID  # noqa: F401  (committed tests/audit/test_pipeline.py reads it here)


@dataclass(frozen=True)
class ScoringConfig:
    """What a caller may vary besides the seed and the device (the rest are named constants)."""

    n_folds: int = 5  # folds of the out-of-fold classifiers
    # None: chosen per catalog from WEIGHT_DECAY_GRID by held-out log-loss of the given labels
    classifier_weight_decay: float | None = None
    classifier_max_iter: int = CLASSIFIER_MAX_ITER  # L-BFGS iterations a fit (bench/audit_memory.py lowers it)


@dataclass
class Scores:
    leaf_paths: np.ndarray  # (K, T) the taxonomy row of each leaf class
    leaf_ids: np.ndarray  # (K,) id in each leaf's deepest present column
    labels: np.ndarray  # (N,) leaf class of the given label, -1 unlabeled
    probs: np.ndarray  # (N, K) pooled distribution over leaves
    suggested_leaf: np.ndarray  # (N,) argmax of probs over the leaves other than the label (leaf class index)
    suggested: np.ndarray  # (N,) leaf id of the suggestion
    suggested_prob: np.ndarray  # (N,)
    p_label: np.ndarray  # (N,) pooled probability of the given label (0 when unlabeled)
    raw_score: np.ndarray  # (N,) uncalibrated "label is wrong" in [0, 1]; 1.0 when unlabeled
    components: dict  # signal name -> (N,) 1 - p_signal(label): each signal alone, for ablations
    signal_probs: dict  # signal name -> (N, K)
    neighbours: np.ndarray  # (N, KNN)
    neighbour_sims: np.ndarray  # (N, KNN)
    combiner: Combiner
    extra: dict = field(default_factory=dict)
    lexical: np.ndarray | None = None  # (N, d) the text features the classifiers read (None: no texts)
    features: np.ndarray | None = None  # (N, F) the suspicion features the raw score reads

    @property
    def suggested_path(self) -> np.ndarray:
        return self.leaf_paths[self.suggested_leaf]

    def label_ids(self) -> np.ndarray:
        return np.where(self.labels >= 0, self.leaf_ids[np.maximum(self.labels, 0)], -1)

    def top_suggestions(self, i: int, k: int = SUGGESTIONS) -> list:
        """The k most probable categories other than the product's own, with their probabilities."""
        order = best_other(self.probs[i : i + 1], self.labels[i : i + 1], k=k)[0]
        return [[int(self.leaf_ids[j]), float(self.probs[i, j])] for j in order]

    def neighbour_evidence(self, i: int) -> list:
        """[[product index, cosine, label id], ...] nearest labelled products first."""
        return neighbour_evidence(self.neighbours[i], self.neighbour_sims[i], self.label_ids())

    def evidence(self, i: int, codes: np.ndarray, min_cluster: int | None = None) -> dict:
        """JSON-able evidence for a flag: cluster make-up, neighbours, top suggestions, signals."""
        min_cluster = self.extra.get("min_cluster", MIN_CLUSTER) if min_cluster is None else min_cluster
        return {
            "cluster": cluster_evidence(codes, self.label_ids(), i, min_cluster),
            "neighbours": self.neighbour_evidence(i),
            "suggestions": self.top_suggestions(i),
            "signals": {s: round(float(1.0 - c[i]), 4) for s, c in self.components.items()},
            # The brand's other products carry the same label, and products like them of other
            # brands do not: a whole brand line may be misfiled (the suggestion is brand_out's).
            "brand_led": bool(np.asarray(self.extra.get("brand_led", np.zeros(i + 1, bool)))[i]),
        }


def score_products(*, embeddings, taxonomy, codes, brands=None, texts=None, seed: int = 0, device: str = "cpu",
                   config: ScoringConfig = ScoringConfig(), combiner: Combiner | None = None,
                   reuse: Scores | None = None) -> Scores:
    """Score every product's label against its code neighbourhood, nearest neighbours and an
    out-of-fold classifier.

    ``taxonomy`` (N, T) int64 holds the labels as they are (-1 absent); ``codes`` (N, L) the semantic
    IDs. ``brands`` (one per product, "" unknown) adds the ``brand_out`` signal and the brand score,
    which lets the raw score find a brand moved together; where the brand score decides, the
    suggestion is ``brand_out``'s. ``texts`` (one per product, e.g. name and brand: ``product_words``)
    add ``text_features`` to the classifiers' inputs.

    Without a ``combiner``, one is fitted: the pool weights that best predict the given labels from the
    leave-self-out signals; with one (a calibration copy), its signals, weights and classifier L2
    weight are used as they are. ``reuse``: the Scores of the same products, embeddings and texts
    under other labels (the calibration copy reuses the catalog's): its text features are taken as
    they are, and its nearest labelled neighbours too where the same products are labelled.
    """
    signals = tuple(s for s in SIGNALS if s in combiner.signals) if combiner is not None else SIGNALS
    if combiner is None and not has_brands(brands):
        signals = tuple(s for s in signals if s != "brand_out")
    embeddings = np.asarray(embeddings, dtype=np.float32)
    taxonomy = np.asarray(taxonomy, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    if not (len(embeddings) == len(taxonomy) == len(codes)):
        raise ValueError(
            f"embeddings, taxonomy and codes must have one row per product: "
            f"got {len(embeddings)}, {len(taxonomy)}, {len(codes)}"
        )
    if texts is not None and len(texts) != len(embeddings):
        raise ValueError(f"texts must have one entry per product: got {len(texts)} for {len(embeddings)} products")
    leaf_paths, labels = leaf_classes(taxonomy)
    if len(leaf_paths) < 2:
        raise ValueError("scoring needs at least two distinct categories among the labelled products")
    n_labelled = int((labels >= 0).sum())
    minimum = MIN_LABELLED_PER_FOLD * config.n_folds
    if n_labelled < minimum:
        raise ValueError(
            f"scoring needs at least {minimum} categorized products ({config.n_folds} folds of "
            f"{MIN_LABELLED_PER_FOLD}); this catalog has {n_labelled}"
        )
    if reuse is not None and len(reuse.labels) != len(labels):
        raise ValueError(f"reuse= holds scores of {len(reuse.labels)} products, not {len(labels)}")
    lexical, known = None, None
    if texts is not None:
        lexical = reuse.lexical if reuse is not None and reuse.lexical is not None else text_features(texts, seed=seed)
    if (reuse is not None and np.array_equal(reuse.labels >= 0, labels >= 0)
            and reuse.neighbours.shape[1] == min(KNN, n_labelled - 1)):
        known = (reuse.neighbours, reuse.neighbour_sims)
    weight_decay = config.classifier_weight_decay
    if combiner is not None and weight_decay is None:  # a copy is scored as its catalog was
        weight_decay = combiner.classifier_weight_decay
    inputs = None if lexical is None else np.hstack([embeddings, lexical])
    sig = compute_signals(embeddings, labels, len(leaf_paths), codes, n_folds=config.n_folds, seed=seed,
                          device=device, weight_decay=weight_decay, max_iter=config.classifier_max_iter,
                          signals=signals, brands=brands, classifier_inputs=inputs, neighbours=known)
    weights = combiner.weights if combiner is not None else fit_pool_weights(sig.probs, labels)
    q = pooled(sig.probs, weights)
    feats, names = suspicion_features(sig.probs, q, labels, parent_groups(leaf_paths), brands)
    if combiner is None:
        combiner = Combiner(signals=signals, weights=weights, feature_names=names,
                            classifier_weight_decay=sig.classifier_weight_decay)
    return _assemble(leaf_paths=leaf_paths, labels=labels, signal_probs=sig.probs, q=q, features=feats,
                     combiner=combiner, neighbours=sig.neighbours, neighbour_sims=sig.neighbour_sims,
                     lexical=lexical)


def _leaf_ids(leaf_paths: np.ndarray) -> np.ndarray:
    present = leaf_paths >= 0
    deepest = present.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1)
    return leaf_paths[np.arange(len(leaf_paths)), deepest]


def _assemble(*, leaf_paths, labels, signal_probs, q, features, combiner, neighbours, neighbour_sims,
              lexical) -> Scores:
    """Raw score, suggestions and evidence from the signals and the pooled distribution ``q``."""
    raw = combiner.raw_score(features)
    brand_led = combiner.brand_led(features)
    if brand_led.any():  # a brand moved together: the pool learned its wrong label, brand_out did not
        q[brand_led] = signal_probs["brand_out"][brand_led]
    unlabelled = labels < 0
    raw[unlabelled] = 1.0
    n = len(labels)
    lab = np.maximum(labels, 0)
    p_label = np.where(unlabelled, 0.0, q[np.arange(n), lab])
    # A suggestion is a fix: the most probable category other than the product's own.
    suggested_leaf = best_other(q, labels)
    components = {s: np.where(unlabelled, 1.0, 1.0 - p[np.arange(n), lab]) for s, p in signal_probs.items()}
    leaf_ids = _leaf_ids(leaf_paths)
    return Scores(
        leaf_paths=leaf_paths, leaf_ids=leaf_ids, labels=labels, probs=q,
        suggested_leaf=suggested_leaf, suggested=leaf_ids[suggested_leaf],
        suggested_prob=q[np.arange(n), suggested_leaf], p_label=p_label, raw_score=raw,
        components=components, signal_probs=signal_probs, neighbours=neighbours,
        neighbour_sims=neighbour_sims, combiner=combiner,
        extra={"min_cluster": MIN_CLUSTER, "brand_led": brand_led & ~unlabelled}, lexical=lexical,
        features=features,
    )


def rescore(scores: Scores, combiner: Combiner) -> Scores:
    """The same signals under another combiner (e.g. another ``score``): nothing is refitted."""
    q = pooled(scores.signal_probs, combiner.weights)
    return _assemble(leaf_paths=scores.leaf_paths, labels=scores.labels, signal_probs=scores.signal_probs, q=q,
                     features=scores.features, combiner=combiner, neighbours=scores.neighbours,
                     neighbour_sims=scores.neighbour_sims, lexical=scores.lexical)
