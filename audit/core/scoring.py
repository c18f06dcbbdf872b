"""Mislabel scoring: how strongly a product's code neighbourhood, nearest neighbours and an
out-of-fold classifier disagree with its label. The entry point, ``score_products``, runs the
signals (``signals.py``), pools them into a suggestion and a raw score (``combine.py``) and returns
``Scores``, which also gives a flag's evidence (``evidence.py``).

Memory stays bounded: the signals' (N, K) distributions are never held whole. They are computed a
block of rows at a time (``BLOCK_CELLS``), and each block leaves behind what is read later: each
product's suspicion features and per-signal 1 - p(label), each row's most probable leaves
(``TopLeaves``) and the label-by-leaf sums of the codes' distribution (taxonomy issues). A catalog
that fits in one block (up to 139,810 products at 960 leaves) is scored exactly as by whole arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from audit.core.combine import (
    POOL_SIGNALS, Combiner, brand_group_score, fit_pool_weights, parent_matrix, pool_rows, suspicion_names,
    suspicion_rows,
)
from audit.core.evidence import (ISSUE_SIGNAL, MIN_CLUSTER, SUGGESTIONS, CodePrefixes, cluster_evidence,
                                 neighbour_evidence)
from audit.core.noise import leaf_classes, parent_groups
from audit.core.signals import (
    CLASSIFIER_MAX_ITER, KNN, MIN_LABELLED_PER_FOLD, SIGNALS, compute_signals, has_brands, text_features,
)
from audit.core.top_leaves import TopLeaves
from quantizer.core.sampling import row_sample

# Cells (rows x leaves) of one block: each signal's distribution of a block is 512 MiB of float32, and a
# block's arrays together stay under ~4 GiB. 139,810 rows at 960 leaves.
BLOCK_CELLS = 2**27
# Rows of a block pooled, featured and ranked at a time on the device: 31 MiB a distribution at 960 leaves.
DEVICE_ROWS = 8192


@dataclass(frozen=True)
class ScoringConfig:
    """What a caller may vary besides the seed and the device (the rest are named constants)."""

    n_folds: int = 5  # folds of brand_out and of the L2 weight's choice; the least a catalog must fill
    # Folds of the classifier: each fold model learns from 9/10 of the catalog instead of 4/5, which ranked
    # moved labels better on all six catalog shapes of bench/studies/audit_signals.py (docs/audit.md), each
    # of 6,000 products. Above classifier_folds_max_rows labelled products the classifier keeps n_folds: a
    # fold of 4/5 is then itself tens of thousands of products, and twice the fits would lengthen the audit
    # at a million (docs/benchmarks.md), where the gain was never measured.
    classifier_folds: int = 10
    classifier_folds_max_rows: int = 100_000

    def classifier_folds_for(self, n_labelled: int) -> int:
        """``classifier_folds`` up to ``classifier_folds_max_rows`` labelled products (fewer where a fold would
        hold under MIN_LABELLED_PER_FOLD of them), ``n_folds`` above; never fewer than ``n_folds``."""
        if n_labelled > self.classifier_folds_max_rows:
            return self.n_folds
        return max(self.n_folds, min(self.classifier_folds, n_labelled // MIN_LABELLED_PER_FOLD))
    # None: chosen per catalog from WEIGHT_DECAY_GRID by held-out log-loss of the given labels
    classifier_weight_decay: float | None = None
    classifier_max_iter: int = CLASSIFIER_MAX_ITER  # L-BFGS iterations a fit (bench/audit_memory.py lowers it)
    block_rows: int | None = None  # rows scored at a time; None: as many as BLOCK_CELLS allows (tests lower it)


@dataclass
class Scores:
    leaf_paths: np.ndarray  # (K, T) the taxonomy row of each leaf class
    leaf_ids: np.ndarray  # (K,) id in each leaf's deepest present column
    labels: np.ndarray  # (N,) leaf class of the given label, -1 unlabeled
    probs: TopLeaves  # the pooled distribution over leaves (brand_out's where brand_led), its top leaves
    suggested_leaf: np.ndarray  # (N,) argmax of probs over the leaves other than the label (leaf class index)
    suggested: np.ndarray  # (N,) leaf id of the suggestion
    suggested_prob: np.ndarray  # (N,)
    p_label: np.ndarray  # (N,) pooled probability of the given label (0 when unlabeled)
    raw_score: np.ndarray  # (N,) uncalibrated "label is wrong" in [0, 1]; 1.0 when unlabeled
    components: dict  # signal name -> (N,) 1 - p_signal(label): each signal alone, for ablations
    signal_top: dict  # signal name (and "pooled", before brand_out replaces it) -> TopLeaves
    confusion: np.ndarray  # (K, K) sum over labelled products of ISSUE_SIGNAL's distribution, by label
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
        leaves, probs = self.probs.rows(slice(i, i + 1)).best_others(self.labels[i : i + 1], k)
        return [[int(self.leaf_ids[j]), float(p)] for j, p in zip(leaves[0], probs[0])]

    def neighbour_evidence(self, i: int, label_ids: np.ndarray | None = None) -> list:
        """[[product index, cosine, label id], ...] nearest labelled products first."""
        label_ids = self.label_ids() if label_ids is None else label_ids
        return neighbour_evidence(self.neighbours[i], self.neighbour_sims[i], label_ids)

    def evidence(self, i: int, codes: np.ndarray, min_cluster: int | None = None, *,
                 prefixes: CodePrefixes | None = None, label_ids: np.ndarray | None = None) -> dict:
        """JSON-able evidence for a flag: cluster make-up, neighbours, top suggestions, signals. For many
        flags, pass ``CodePrefixes(codes)`` and ``label_ids()`` computed once."""
        min_cluster = self.extra.get("min_cluster", MIN_CLUSTER) if min_cluster is None else min_cluster
        label_ids = self.label_ids() if label_ids is None else label_ids
        return {
            "cluster": cluster_evidence(codes, label_ids, i, min_cluster, prefixes),
            "neighbours": self.neighbour_evidence(i, label_ids),
            "suggestions": self.top_suggestions(i),
            # per signal, how strongly it says the label is wrong (1 - its probability of the label); none
            # without a label
            "signals": ({s: round(float(c[i]), 4) for s, c in self.components.items()} if self.labels[i] >= 0
                        else {}),
            # The brand's other products carry the same label, and products like them of other
            # brands do not: a whole brand line may be misfiled (the suggestion is brand_out's).
            "brand_led": bool(np.asarray(self.extra.get("brand_led", np.zeros(i + 1, bool)))[i]),
        }


def score_products(*, embeddings, taxonomy, codes, brands=None, texts=None, terms=None, seed: int = 0,
                   device: str = "cpu", config: ScoringConfig = ScoringConfig(), combiner: Combiner | None = None,
                   reuse: Scores | None = None, lexical: np.ndarray | None = None,
                   fold_models: dict | None = None) -> Scores:
    """Score every product's label against its code neighbourhood, nearest neighbours and an
    out-of-fold classifier.

    ``taxonomy`` (N, T) int64 holds the labels as they are (-1 absent); ``codes`` (N, L) the semantic
    IDs. ``brands`` (one per product, "" unknown) adds the ``brand_out`` signal and the brand score,
    which lets the raw score find a brand moved together; where the brand score decides, the
    suggestion is ``brand_out``'s. ``texts`` (one per product, e.g. name and brand: ``product_words``)
    add ``text_features`` to the classifiers' inputs; ``terms``: their TF-IDF where it is counted already
    (``text_terms``: the pipeline counts it while the run trains).

    Without a ``combiner``, one is fitted: the pool weights that best predict the given labels from the
    leave-self-out signals; with one (a calibration copy), its signals, weights and classifier L2
    weight are used as they are. ``reuse``: the Scores of the same products, embeddings and texts
    under other labels (the calibration copy reuses the catalog's): its text features are taken as
    they are, and its nearest labelled neighbours too where the same products are labelled. ``lexical``: the
    texts' ``text_features`` where computed already. ``fold_models``: the classifiers' folds where fitted already
    ({signal: each fold's (mean, std, w, b)}, ``compute_signals``): a fanned-out audit fits them in chunks
    (``FoldFit``).
    """
    signals = tuple(s for s in SIGNALS if s in combiner.signals) if combiner is not None else scoring_signals(brands)
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
    leaf_paths, labels = scorable_labels(taxonomy, config)
    n_labelled = int((labels >= 0).sum())
    if reuse is not None and len(reuse.labels) != len(labels):
        raise ValueError(f"reuse= holds scores of {len(reuse.labels)} products, not {len(labels)}")
    known = None
    if texts is None:
        lexical = None
    elif lexical is None:
        lexical = reuse.lexical if reuse is not None else None
        if lexical is None:
            lexical = text_features(texts, seed=seed, device=device, terms=terms)
    if (reuse is not None and np.array_equal(reuse.labels >= 0, labels >= 0)
            and reuse.neighbours.shape[1] == min(KNN, n_labelled - 1)):
        known = (reuse.neighbours, reuse.neighbour_sims)
    weight_decay = config.classifier_weight_decay
    if combiner is not None and weight_decay is None:  # a copy is scored as its catalog was
        weight_decay = combiner.classifier_weight_decay
    inputs = None if lexical is None else np.hstack([embeddings, lexical])
    sig = compute_signals(embeddings, labels, len(leaf_paths), codes, n_folds=config.n_folds,
                          classifier_folds=config.classifier_folds_for(n_labelled), seed=seed,
                          device=device, weight_decay=weight_decay, max_iter=config.classifier_max_iter,
                          signals=signals, brands=brands, classifier_inputs=inputs, neighbours=known,
                          fold_models=fold_models)
    del inputs
    n, n_leaves = len(labels), len(leaf_paths)
    block = config.block_rows or max(1, BLOCK_CELLS // n_leaves)
    blocks = [np.arange(start, min(n, start + block)) for start in range(0, n, block)]
    probs = sig.probs(blocks[0]) if len(blocks) == 1 else None
    if combiner is not None:
        weights = combiner.weights
    elif probs is not None:
        weights = fit_pool_weights(probs, labels, device=device)
    else:  # on the labelled products, a seeded sample of them where more than BLOCK_CELLS // K
        labelled = np.flatnonzero(labels >= 0)
        fit = labelled[row_sample(len(labelled), max(1, BLOCK_CELLS // n_leaves), np.random.default_rng(seed))]
        weights = fit_pool_weights(sig.probs(fit, POOL_SIGNALS), labels[fit], device=device)
    to_parent = parent_matrix(parent_groups(leaf_paths), device)
    unlabelled = labels < 0
    features = components = names = None
    signal_top = {name: TopLeaves.empty(n, n_leaves) for name in ("pooled", *sig.sources)}
    confusion = torch.zeros((n_leaves, n_leaves), dtype=torch.float64, device=device)
    for rows in blocks:
        if probs is None:
            probs = sig.probs(rows)
        if features is None:
            names = suspicion_names(probs)
            features = np.empty((n, len(names)))
            components = {s: np.empty(n, np.float32) for s in probs}
        for start in range(0, len(rows), DEVICE_ROWS):  # on the device, a slice of the block at a time
            at = slice(start, start + DEVICE_ROWS)
            part, lab = rows[at], torch.as_tensor(labels[rows[at]], device=device)
            p = {s: torch.as_tensor(v[at], device=device) for s, v in probs.items()}
            q = pool_rows(p, weights)
            features[part] = suspicion_rows(p, q, lab, to_parent).cpu().numpy()
            for name, t in p.items():
                top = TopLeaves.of_rows(t, lab)
                components[name][part] = 1.0 - top.label_prob
                signal_top[name].put(part, top)
            signal_top["pooled"].put(part, TopLeaves.of_rows(q, lab))
            if ISSUE_SIGNAL in p:  # row a: the sum of the distributions of the products labelled a
                known = lab >= 0
                confusion.index_add_(0, lab[known], p[ISSUE_SIGNAL][known].to(torch.float64))
        probs = None  # before the next block's
    confusion = confusion.cpu().numpy()
    components = {s: np.where(unlabelled, 1.0, c) for s, c in components.items()}
    if "brand_out" in signal_top:
        features = np.hstack([features, brand_group_score(features[:, names.index("brand_out:margin")], labels,
                                                          brands)[:, None]])
        names.append("brand_out:group")
    if combiner is None:
        combiner = Combiner(signals=signals, weights=weights, feature_names=names,
                            classifier_weight_decay=sig.classifier_weight_decay)
    return _assemble(leaf_paths=leaf_paths, labels=labels, signal_top=signal_top, confusion=confusion,
                     components=components, features=features, combiner=combiner, neighbours=sig.neighbours,
                     neighbour_sims=sig.neighbour_sims, lexical=lexical)


def scoring_signals(brands) -> tuple[str, ...]:
    """The signals a catalog is scored with (its combiner's, and so its calibration copy's): every one of SIGNALS,
    less ``brand_out`` without at least two brands (``has_brands``)."""
    return SIGNALS if has_brands(brands) else tuple(s for s in SIGNALS if s != "brand_out")


def scorable_labels(taxonomy, config: ScoringConfig = ScoringConfig()) -> tuple[np.ndarray, np.ndarray]:
    """``leaf_classes(taxonomy)``, or ValueError where the labels cannot be scored: fewer than two leaves, or fewer
    labelled products than ``config.n_folds`` folds of MIN_LABELLED_PER_FOLD."""
    leaf_paths, labels = leaf_classes(np.asarray(taxonomy, dtype=np.int64))
    if len(leaf_paths) < 2:
        raise ValueError("scoring needs at least two distinct categories among the labelled products")
    n_labelled = int((labels >= 0).sum())
    minimum = MIN_LABELLED_PER_FOLD * config.n_folds
    if n_labelled < minimum:
        raise ValueError(
            f"scoring needs at least {minimum} categorized products ({config.n_folds} folds of "
            f"{MIN_LABELLED_PER_FOLD}); this catalog has {n_labelled}"
        )
    return leaf_paths, labels


@dataclass(frozen=True)
class FoldFit:
    """One fold classifier that ``score_products`` fits, to be fitted on its own (a chunk of a fanned-out audit,
    ``audit.runs.audit_plan``) and handed back through ``fold_models``: the ``signal``'s fold ``fold`` of
    ``n_folds``, on the catalog's labels or the calibration copy's (``copy``), its folds drawn from ``seed``."""

    copy: bool
    signal: str
    fold: int
    n_folds: int
    seed: int


def fold_fits(labels: np.ndarray, *, signals, seed: int, copy: bool = False,
              config: ScoringConfig = ScoringConfig()) -> list[FoldFit]:
    """The fold classifiers ``score_products`` fits for ``labels`` (its ``scorable_labels``) with ``signals`` and
    ``seed``: every fold of "classifier" and of "brand_out", those of the two among ``signals``."""
    n_labelled = int((labels >= 0).sum())
    folds = {"classifier": config.classifier_folds_for(n_labelled), "brand_out": config.n_folds}
    return [FoldFit(copy, signal, f, folds[signal], seed) for signal in ("classifier", "brand_out")
            if signal in signals for f in range(folds[signal])]


def leaf_ids_of(leaf_paths: np.ndarray) -> np.ndarray:
    """(K,) each leaf class's taxonomy id: its path's deepest present column (paths of mixed depth)."""
    present = leaf_paths >= 0
    deepest = present.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1)
    return leaf_paths[np.arange(len(leaf_paths)), deepest]


def _assemble(*, leaf_paths, labels, signal_top, confusion, components, features, combiner, neighbours,
              neighbour_sims, lexical) -> Scores:
    """Raw score and suggestions from the features and the pooled distribution's top leaves."""
    raw = combiner.raw_score(features)
    brand_led = combiner.brand_led(features)
    probs = signal_top["pooled"]
    if brand_led.any():  # a brand moved together: the pool learned its wrong label, brand_out did not
        probs = probs.where(brand_led, signal_top["brand_out"])
    unlabelled = labels < 0
    raw[unlabelled] = 1.0
    p_label = np.where(unlabelled, 0.0, probs.label_prob)
    # A suggestion is a fix: the most probable category other than the product's own.
    suggested_leaf, suggested_prob = (a[:, 0] for a in probs.best_others(labels, 1))
    leaf_ids = leaf_ids_of(leaf_paths)
    return Scores(
        leaf_paths=leaf_paths, leaf_ids=leaf_ids, labels=labels, probs=probs,
        suggested_leaf=suggested_leaf, suggested=leaf_ids[suggested_leaf],
        suggested_prob=suggested_prob, p_label=p_label, raw_score=raw,
        components=components, signal_top=signal_top, confusion=confusion, neighbours=neighbours,
        neighbour_sims=neighbour_sims, combiner=combiner,
        extra={"min_cluster": MIN_CLUSTER, "brand_led": brand_led & ~unlabelled}, lexical=lexical,
        features=features,
    )


def rescore(scores: Scores, combiner: Combiner) -> Scores:
    """The same products under another raw score (``Combiner.score``, ``brand_offset``): nothing is
    refitted. The pool is kept: a combiner with other pool weights needs ``score_products``."""
    if combiner.weights != scores.combiner.weights:
        raise ValueError("rescore keeps the pool: score with score_products(combiner=...) for other pool weights")
    return _assemble(leaf_paths=scores.leaf_paths, labels=scores.labels, signal_top=scores.signal_top,
                     confusion=scores.confusion, components=scores.components, features=scores.features,
                     combiner=combiner, neighbours=scores.neighbours, neighbour_sims=scores.neighbour_sims,
                     lexical=scores.lexical)
