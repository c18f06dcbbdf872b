"""Mislabel scoring: how strongly a product's code neighbourhood and nearest neighbours disagree with its label.

Three signals each give a distribution over leaves for every product, computed without the
product's own label (out-of-fold or leave-self-out):

- ``classifier``: out-of-fold softmax regression on the embeddings (cleanlab's self-confidence
  signal, optionally with one-hot code prefixes as extra features), and on the products' own words
  when texts are given (``text_features``: words that name a category count in full, where a
  sentence embedding blurs them with their context);
- ``codes``: label make-up of the product's code prefixes, deepest level backed off to coarser ones;
- ``knn``: similarity-weighted label vote of the nearest labelled neighbours.

A fourth, ``brand_out`` (when brands are given), is the same classifier with folds grouped by brand:
a product's brand is never in its training fold. It is weaker alone (on BigBasket the brand says a lot
about the category) and stays out of the pool, but it is the only signal that sees a whole brand moved
together: the other three learn the wrong brand -> category from the brand's other, equally wrong,
labels. Its log-margin averaged over the products sharing a brand and a label is the brand score.

A log-linear pool of the signals, with weights fitted to predict the given labels, is the
suggestion distribution. Whether the label is wrong is decided by a small stacked logistic
regression over a handful of features (pooled self-confidence at leaf and parent level, pooled
margin, each signal's self-confidence), trained on a copy of the catalog with known injected wrong
labels (uniform, sibling and look-alike moves; ``noise.py``): the catalog supervises itself. Its
output is ``raw_score``; ``calibration.py`` turns that into a probability. ``mode="pooled"`` (the default)
skips the stacker: raw score = logistic of the pooled log-margin of the best other leaf over the
label plus the classifier's own log-margin (the classifier is the sharpest single signal for
uniform moves, the pool for sibling and look-alike moves), or the brand score less
``Combiner.brand_offset`` where that is larger (a brand moved together; its suggestion then comes from
``brand_out``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import coo_matrix, hstack
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from audit.core.noise import inject_noise, leaf_classes, parent_groups
from quantizer.core.neighbours import nearest_neighbours
from quantizer.core.sampling import row_sample

SIGNALS = ("classifier", "codes", "knn", "brand_out")
MIN_LABELLED_PER_FOLD = 4  # fewer, and an out-of-fold classifier has nothing to learn from
POOL_SIGNALS = ("classifier", "codes", "knn")  # brand_out is kept out of the pool (see the module doc)
# LSA dimensions of the texts' TF-IDF appended to the classifier's inputs. BigBasket, clean labels,
# 5-fold top-1 of the classifier: embeddings alone 0.752, + 128 dims 0.774, + 256 dims 0.783
# (bench/studies/classifier_inputs.py; docs/audit.md). A linear SVM on the full sparse TF-IDF reached 0.811
# in a side experiment, but is too slow to refit in every fold of every audit.
TEXT_DIMS = 256
TEXT_FIT_ROWS = 100_000  # the SVD of the text features is fitted on at most this many products (a seeded sample)
EPS = 1e-6
# The classifiers' L2 weight. The right amount shrinks as a catalog grows: 1e-3, chosen on the full
# BigBasket, under-regularised 6,000-product catalogs (AP of 1 - p(label), uniform moves, seed 0:
# Instacart 0.564 at 1e-3 vs 0.641 at 1e-2; BigBasket cut to two levels 0.846 vs 0.905). So each audit
# picks from this grid the value whose classifier best predicts the given labels of one held-out fold
# (log-loss; no injected labels involved), as cleanlab's baseline chooses its C.
WEIGHT_DECAY_GRID = (5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2)


# ---------------------------------------------------------------------------------------------
# signals


@dataclass
class SignalParams:
    n_folds: int = 5
    seed: int = 0
    knn: int = 10
    knn_temperature: float = 0.1  # neighbour weight exp((cos - 1) / T): near-duplicates dominate
    knn_prior: float = 0.5  # pseudo-weight of the catalog-wide label prior in the kNN vote
    code_prior: float = 2.0  # pseudo-count backing a prefix's make-up off to its parent prefix
    # None: chosen per catalog from WEIGHT_DECAY_GRID by held-out log-loss of the given labels
    classifier_weight_decay: float | None = None
    classifier_max_iter: int = 100
    classifier_code_levels: int = 0  # one-hot code prefixes (levels 1..n) added to the classifier
    device: str = "cpu"


@dataclass
class Signals:
    probs: dict  # signal name -> (N, K) float32, each row sums to 1
    neighbours: np.ndarray  # (N, knn) indices of the nearest labelled products, -1 padded
    neighbour_sims: np.ndarray  # (N, knn) cosine similarities
    cluster_size: np.ndarray  # (N,) members of the deepest code prefix, the product excluded
    classifier_weight_decay: float | None = None  # what the classifiers used (chosen or given)


def _stratified_folds(labels: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    order = np.lexsort((rng.random(len(labels)), labels))
    folds = np.empty(len(labels), dtype=np.int64)
    folds[order] = np.arange(len(labels)) % n_folds
    return folds


def _brand_keys(brands, alone: np.ndarray | None = None) -> np.ndarray:
    """(N,) normalised brand names; a product without a brand (or marked ``alone``) gets a key of
    its own, so it is a brand of one."""
    keys = np.asarray([("" if b is None else str(b).strip().lower()) for b in brands], dtype=object)
    alone = (keys == "") if alone is None else (keys == "") | alone
    return np.where(alone, np.asarray([f"\x00{i}" for i in range(len(keys))], dtype=object), keys)


def _brand_folds(brands, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Folds of whole brands, largest brands first onto the lightest fold, so the folds stay about
    equal in size."""
    _, group, sizes = np.unique(_brand_keys(brands), return_inverse=True, return_counts=True)
    fold_of = np.empty(len(sizes), dtype=np.int64)
    load = np.zeros(n_folds)
    for g in np.lexsort((rng.random(len(sizes)), -sizes)):
        fold_of[g] = load.argmin()
        load[fold_of[g]] += sizes[g]
    return fold_of[group.reshape(-1)]


def brand_groups(labels: np.ndarray, brands) -> np.ndarray:
    """(N,) id of each product's (brand, label) group; products without a brand or a label are alone."""
    keys = _brand_keys(brands, alone=labels < 0)
    _, group = np.unique(np.stack([keys, labels.astype(str)], axis=1).astype(str), axis=0, return_inverse=True)
    return group.reshape(-1)


def product_words(name, brand) -> str:
    """The text ``text_features`` reads for one product: its name and brand."""
    return f"{name or ''} {brand or ''}".strip()


def text_features(texts, dims: int = TEXT_DIMS, seed: int = 0, max_fit: int = TEXT_FIT_ROWS) -> np.ndarray | None:
    """(N, d <= dims) lexical features: TF-IDF of word 1-2-grams and in-word character 2-4-grams,
    reduced by truncated SVD (LSA), rows L2-normalised. Unsupervised (no labels), deterministic for a
    seed. None when the texts hold too few distinct terms to give two dimensions. Above ``max_fit``
    texts the SVD is fitted on a seeded sample of that many and projects all of them (the SVD was more than
    half of the scoring time at a million products); the vocabulary is always the whole catalog's."""
    texts = ["" if t is None else str(t) for t in texts]
    blocks = []
    for vectorizer in (
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True),
    ):
        try:
            blocks.append(vectorizer.fit_transform(texts))
        except ValueError:  # empty vocabulary: no term in two texts
            continue
    if not blocks:
        return None
    tfidf = hstack(blocks).tocsr()
    k = min(dims, tfidf.shape[1] - 1, len(texts) - 1)
    if k < 2:
        return None
    svd = TruncatedSVD(k, random_state=seed)
    sample = row_sample(tfidf.shape[0], max_fit, np.random.default_rng(seed))
    if len(sample) < tfidf.shape[0]:
        z = svd.fit(tfidf[sample]).transform(tfidf).astype(np.float32)
    else:
        z = svd.fit_transform(tfidf).astype(np.float32)
    return z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-9)


def _prefix_ids(codes: np.ndarray, depth: int) -> np.ndarray:
    _, ids = np.unique(codes[:, :depth], axis=0, return_inverse=True)
    return ids.reshape(-1)


def _fit_softmax_regression(x, y, prefixes, n_classes, n_groups, params: SignalParams):
    """Multinomial logistic regression, full batch L-BFGS; prefix one-hots enter as bias tables."""
    d = x.shape[1]
    w = torch.zeros(d, n_classes, device=x.device, requires_grad=True)
    b = torch.zeros(n_classes, device=x.device, requires_grad=True)
    tables = [torch.zeros(g, n_classes, device=x.device, requires_grad=True) for g in n_groups]
    opt = torch.optim.LBFGS(
        [w, b, *tables], lr=1.0, max_iter=params.classifier_max_iter, history_size=10,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        logits = x @ w + b  # (n, K)
        for t, p in zip(tables, prefixes):
            logits = logits + t[p]
        reg = (w * w).sum() + sum((t * t).sum() for t in tables)
        loss = F.cross_entropy(logits, y) + params.classifier_weight_decay * reg
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach(), [t.detach() for t in tables]


def choose_weight_decay(inputs, labels, n_leaves, params: SignalParams, grid=WEIGHT_DECAY_GRID) -> float:
    """The grid value whose classifier, trained on all folds but the first, gives the lowest log-loss of
    the given labels of the first fold (stratified folds of ``params.seed``, as ``classifier_probs``)."""
    device = torch.device(params.device)
    labelled = np.flatnonzero(labels >= 0)
    folds = _stratified_folds(labels[labelled], params.n_folds, np.random.default_rng(params.seed))
    train, test = labelled[folds != 0], labelled[folds == 0]
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32), device=device)
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    y_train = torch.as_tensor(labels[train], device=device)
    y_test = torch.as_tensor(labels[test], device=device)
    losses = []
    for weight_decay in grid:
        w, b, _ = _fit_softmax_regression((x[train] - mean) / std, y_train, [], n_leaves, [],
                                          replace(params, classifier_weight_decay=weight_decay))
        logits = ((x[test] - mean) / std) @ w + b
        losses.append(float(F.cross_entropy(logits, y_test)))
    return float(grid[int(np.argmin(losses))])


def classifier_probs(embeddings, labels, n_leaves, codes, params: SignalParams, brands=None) -> np.ndarray:
    """(N, K) out-of-fold probabilities; unlabeled products get the mean of the fold models. With
    ``brands``, folds are whole brands (no code prefixes: a prefix would carry the brand back in)."""
    device = torch.device(params.device)
    rng = np.random.default_rng(params.seed)
    x_all = torch.as_tensor(np.asarray(embeddings, dtype=np.float32), device=device)
    labelled = np.flatnonzero(labels >= 0)
    unlabelled = np.flatnonzero(labels < 0)
    levels = 0 if brands is not None else min(params.classifier_code_levels, codes.shape[1])
    prefixes_np = [_prefix_ids(codes, l + 1) for l in range(levels)]
    prefixes_all = [torch.as_tensor(p, device=device) for p in prefixes_np]
    n_groups = [int(p.max()) + 1 for p in prefixes_np]
    out = np.zeros((len(labels), n_leaves), dtype=np.float32)
    if brands is None:
        folds = _stratified_folds(labels[labelled], params.n_folds, rng)
    else:
        folds = _brand_folds(np.asarray(brands, dtype=object)[labelled], params.n_folds, rng)
    for f in range(params.n_folds):
        train, test = labelled[folds != f], labelled[folds == f]
        xt = x_all[train]
        mean, std = xt.mean(0), xt.std(0) + 1e-6
        y = torch.as_tensor(labels[train], device=device)
        w, b, tables = _fit_softmax_regression(
            (xt - mean) / std, y, [p[train] for p in prefixes_all], n_leaves, n_groups, params
        )

        def predict(idx):
            logits = ((x_all[idx] - mean) / std) @ w + b
            for t, p in zip(tables, prefixes_all):
                logits = logits + t[p[idx]]
            return torch.softmax(logits, dim=1).cpu().numpy()

        out[test] = predict(test)
        if len(unlabelled):
            out[unlabelled] += predict(unlabelled) / params.n_folds
    return out


def nearest_labelled(embeddings, labels, k, device, chunk=2048):
    """(N, k) indices and cosines of each product's nearest labelled products, itself left out
    (exact up to `quantizer.core.neighbours.EXACT_LIMIT` products, probed cells above)."""
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32), device=torch.device(device))
    idx, sims = nearest_neighbours(x, k, base=torch.as_tensor(np.asarray(labels) >= 0), chunk=chunk)
    return idx.cpu().numpy(), sims.cpu().numpy()


def knn_probs(neighbours, sims, labels, n_leaves, prior, params: SignalParams, chunk: int = 8192) -> np.ndarray:
    """(N, K) similarity-weighted label vote of each product's neighbours plus ``knn_prior`` times the
    prior, normalised; `chunk` rows at a time (no float64 (N, K) temporaries)."""
    n = len(labels)
    out = np.empty((n, n_leaves), np.float32)
    for start in range(0, n, chunk):
        nb, sm = neighbours[start:start + chunk], sims[start:start + chunk]
        weights = np.exp((sm.astype(np.float64) - 1.0) / params.knn_temperature)  # (chunk, k)
        votes = np.zeros((len(nb), n_leaves), dtype=np.float64)
        rows, cols = np.nonzero(nb >= 0)  # -1: padding where fewer were found
        np.add.at(votes, (rows, labels[nb[rows, cols]]), weights[rows, cols])
        votes += params.knn_prior * prior
        out[start:start + chunk] = votes / votes.sum(1, keepdims=True)
    return out


def code_probs(codes, labels, n_leaves, prior, params: SignalParams, chunk: int = 8192):
    """Leave-self-out label make-up of each code prefix, depth 1 backed off to the catalog prior,
    depth d to depth d-1 (Dirichlet smoothing with ``code_prior`` pseudo-counts). Prefix counts are
    kept sparse and rows are smoothed `chunk` at a time, so memory beyond the (N, K) result stays
    small (dense float64 (N, K) temporaries made this the audit's peak)."""
    n = len(labels)
    labelled = np.flatnonzero(labels >= 0)
    groups = [_prefix_ids(codes, depth) for depth in range(1, codes.shape[1] + 1)]
    counts = [coo_matrix((np.ones(len(labelled)), (g[labelled], labels[labelled])),
                         shape=(int(g.max()) + 1, n_leaves)).tocsr() for g in groups]
    out = np.empty((n, n_leaves), np.float32)
    size = np.zeros(n)
    prior = np.asarray(prior, np.float64)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        own_label = labels[rows]
        mine = np.flatnonzero(own_label >= 0)
        p = np.broadcast_to(prior, (len(rows), n_leaves))
        for g, c in zip(groups, counts):
            own = c[g[rows]].toarray()  # (chunk, K)
            own[mine, own_label[mine]] -= 1.0  # leave the product out
            size[rows] = own.sum(1)
            p = (own + params.code_prior * p) / (size[rows, None] + params.code_prior)
        out[rows] = p
    return out, size


def compute_signals(embeddings, labels, n_leaves, codes, params: SignalParams, signals=SIGNALS, brands=None,
                    classifier_inputs=None, neighbours=None) -> Signals:
    """``classifier_inputs`` (default: the embeddings) feed the two classifiers; neighbours and codes
    always come from the embeddings. ``neighbours``: ((N, k) indices, (N, k) cosines) from
    ``nearest_labelled`` over the same labelled products, when already computed."""
    x = embeddings if classifier_inputs is None else classifier_inputs
    prior = np.bincount(labels[labels >= 0], minlength=n_leaves).astype(np.float64) + 1.0
    prior /= prior.sum()
    neighbours, sims = neighbours or nearest_labelled(embeddings, labels, params.knn, params.device)
    if params.classifier_weight_decay is None and ("classifier" in signals or "brand_out" in signals):
        params = replace(params, classifier_weight_decay=choose_weight_decay(x, labels, n_leaves, params))
    probs = {}
    if "classifier" in signals:
        probs["classifier"] = classifier_probs(x, labels, n_leaves, codes, params)
    codes_p, cluster_size = code_probs(codes, labels, n_leaves, prior, params)
    if "codes" in signals:
        probs["codes"] = codes_p
    if "knn" in signals:
        probs["knn"] = knn_probs(neighbours, sims, labels, n_leaves, prior, params)
    if "brand_out" in signals:
        if brands is None:
            raise ValueError('signal "brand_out" needs brands: pass brands= (one per product)')
        probs["brand_out"] = classifier_probs(x, labels, n_leaves, codes, params, brands=brands)
    return Signals(probs, neighbours, sims, cluster_size, params.classifier_weight_decay)


# ---------------------------------------------------------------------------------------------
# combination


def pooled(probs: dict, weights: dict, chunk: int = 8192) -> np.ndarray:
    """Log-linear pool: q ∝ Π_s p_s ** w_s, (N, K); `chunk` rows at a time."""
    n, k = next(iter(probs.values())).shape
    out = np.empty((n, k), np.float32)
    for start in range(0, n, chunk):
        logq = sum(w * np.log(probs[s][start:start + chunk] + EPS) for s, w in weights.items())
        logq = logq - logq.max(1, keepdims=True)
        q = np.exp(logq)
        out[start:start + chunk] = q / q.sum(1, keepdims=True)
    return out


def fit_pool_weights(probs: dict, labels: np.ndarray, device="cpu", steps=50) -> dict:
    """Weights that best predict the given labels from the leave-self-out distributions."""
    names = [s for s in probs if s in POOL_SIGNALS]
    keep = np.flatnonzero(labels >= 0)
    logp = torch.stack([torch.as_tensor(np.log(probs[s][keep] + EPS)) for s in names])  # (S, n, K)
    y = torch.as_tensor(labels[keep])
    w = torch.ones(len(names), dtype=logp.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(torch.einsum("s,snk->nk", w, logp), y)
        loss.backward()
        return loss

    opt.step(closure)
    return {s: float(v) for s, v in zip(names, w.detach().clamp(min=0.0))}


def _features(probs: dict, q: np.ndarray, labels, parent_of, brands=None) -> tuple[np.ndarray, list[str]]:
    """Per product, a handful of "suspicion" features, each oriented so that larger means more
    likely wrong (the stacker's weights are kept non-negative, so no feature can be learned
    backwards): pooled -log p(label), pooled -log p(label's parent), pooled log-margin of the best
    other leaf over the label, and each signal's -log p(label); with ``brand_out``, its log-margin averaged over the
    product's (brand, label) group (``brand_out:group``, -inf for a group of one: one product is no
    brand line). Column 0 is pooled -log p(label)."""
    n = len(labels)
    rows = np.arange(n)
    lab = np.where(labels >= 0, labels, 0)
    to_parent = np.zeros((len(parent_of), parent_of.max() + 1), dtype=np.float32)
    to_parent[np.arange(len(parent_of)), parent_of] = 1.0
    own = q[rows, lab]
    other = q.copy()
    other[rows, lab] = 0.0
    cols = [-np.log(own + EPS), -np.log((q @ to_parent)[rows, parent_of[lab]] + EPS),
            np.log(other.max(1) + EPS) - np.log(own + EPS)]
    names = ["pooled:self", "pooled:parent", "pooled:margin"]
    for name, p in probs.items():
        own_s = p[rows, lab]
        other = p.copy()
        other[rows, lab] = 0.0
        cols += [-np.log(own_s + EPS), np.log(other.max(1) + EPS) - np.log(own_s + EPS)]
        names += [f"{name}:self", f"{name}:margin"]
    if "brand_out" in probs:
        group = brand_groups(labels, brands)
        size = np.bincount(group)[group]
        mean = np.bincount(group, weights=cols[-1])[group] / size
        cols.append(np.where(size >= 2, mean, -np.inf))
        names.append("brand_out:group")
    return np.stack(cols, axis=1).astype(np.float64), names


POOLED_SCORE = ("pooled:margin", "classifier:margin")  # the raw score of mode="pooled": sum of these
# A brand line scores on its own scale: a (brand, label) group's mean brand-out log-margin is often
# positive for clean brands (the taxonomy is ambiguous), so it must clear the pooled score by this
# much. Dev split (12,000 BigBasket products, seed 100, k-means codes): brand-regime AP 0.044 -> 0.14,
# uniform / sibling / look-alike AP within 0.005; lower offsets trade those for the brand regime.
BRAND_OFFSET = 2.0


def _fit_nonnegative_logistic(z: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> tuple[np.ndarray, float]:
    """Logistic regression with coefficients >= 0 (intercept free), mean log-loss + l2 * ||coef||^2."""
    from scipy.optimize import minimize

    yf = y.astype(np.float64)

    def loss(theta):
        coef, b = theta[:-1], theta[-1]
        m = z @ coef + b
        p = 1.0 / (1.0 + np.exp(-m))
        value = np.mean(np.logaddexp(0.0, m) - yf * m) + l2 * coef @ coef
        g = p - yf
        return value, np.append(z.T @ g / len(yf) + 2 * l2 * coef, g.mean())

    theta0 = np.zeros(z.shape[1] + 1)
    theta0[-1] = np.log(max(yf.mean(), 1e-6) / max(1 - yf.mean(), 1e-6))
    bounds = [(0.0, None)] * z.shape[1] + [(None, None)]
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500})
    return res.x[:-1], float(res.x[-1])


@dataclass
class Combiner:
    """How the signals are pooled (suggestion) and turned into a raw score. JSON-able.

    ``mode="pooled"`` (default): raw score = logistic of pooled log-margin + classifier log-margin,
    no learned weights. ``mode="stacked"``: a logistic regression over the few
    ``_features`` columns, learned on a copy with known injected wrong labels."""

    signals: tuple
    weights: dict
    feature_names: list
    mean: list
    scale: list
    coef: list
    intercept: float
    mode: str = "stacked"
    brand_offset: float = BRAND_OFFSET
    score: tuple = POOLED_SCORE  # the feature columns the pooled raw score sums
    classifier_weight_decay: float | None = None  # the classifiers' L2 weight, chosen on the catalog

    def _margins(self, features: np.ndarray) -> np.ndarray:
        cols = [self.feature_names.index(f) for f in self.score if f in self.feature_names]
        return features[:, cols].sum(1)

    def _brand_score(self, features: np.ndarray) -> np.ndarray:
        return features[:, self.feature_names.index("brand_out:group")] - self.brand_offset

    def log_odds(self, features: np.ndarray) -> np.ndarray:
        """Pooled mode: the summed log-margins, or the brand score less ``brand_offset`` where larger."""
        m = self._margins(features)
        if "brand_out:group" in self.feature_names:
            m = np.maximum(m, self._brand_score(features))
        return m

    def brand_led(self, features: np.ndarray) -> np.ndarray:
        """(N,) bool: the brand score decided the raw score (pooled mode) and calls the label wrong
        (log-odds above 0), so the suggestion should come from ``brand_out``."""
        if self.mode != "pooled" or "brand_out:group" not in self.feature_names:
            return np.zeros(len(features), dtype=bool)
        return self._brand_score(features) > np.maximum(self._margins(features), 0.0)

    def raw_score(self, features: np.ndarray) -> np.ndarray:
        if self.mode == "pooled":  # logistic of the summed log-margins (best other leaf vs the label)
            return 1.0 / (1.0 + np.exp(-self.log_odds(features)))
        features = np.where(np.isfinite(features), features, 0.0)
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def to_dict(self) -> dict:
        keys = ("weights", "feature_names", "mean", "scale", "coef", "intercept", "mode", "brand_offset",
                "classifier_weight_decay")
        return {k: getattr(self, k) for k in keys} | {"signals": list(self.signals), "score": list(self.score)}

    @classmethod
    def from_dict(cls, d: dict) -> "Combiner":
        return cls(**{**d, "signals": tuple(d["signals"]), "score": tuple(d.get("score", POOLED_SCORE))})


SELF_SUPERVISION_REGIMES = ("uniform", "sibling", "lookalike")


def inject_mixture(taxonomy, *, rate, seed, embeddings, brands=None, regimes=SELF_SUPERVISION_REGIMES):
    """A copy of the catalog with ``rate`` of its labels moved, split evenly over ``regimes``."""
    regimes = [r for r in regimes if r != "brand" or brands is not None]
    noisy, injected = np.asarray(taxonomy, dtype=np.int64), np.zeros(len(taxonomy), dtype=bool)
    for j, regime in enumerate(regimes):
        noisy, mask = inject_noise(noisy, regime, rate / len(regimes), seed + 7919 * (j + 1), embeddings, brands)
        injected |= mask
    return noisy, injected


# ---------------------------------------------------------------------------------------------
# public API


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
    neighbours: np.ndarray  # (N, knn)
    neighbour_sims: np.ndarray  # (N, knn)
    combiner: Combiner
    extra: dict = field(default_factory=dict)
    lexical: np.ndarray | None = None  # (N, d) the text features the classifiers read (None: no texts)
    features: np.ndarray | None = None  # (N, F) the suspicion features (``_features``) the raw score reads

    @property
    def suggested_path(self) -> np.ndarray:
        return self.leaf_paths[self.suggested_leaf]

    def label_ids(self) -> np.ndarray:
        return np.where(self.labels >= 0, self.leaf_ids[np.maximum(self.labels, 0)], -1)

    def top_suggestions(self, i: int, k: int = 3) -> list:
        """The k most probable categories other than the product's own, with their probabilities."""
        order = best_other(self.probs[i : i + 1], self.labels[i : i + 1], k=k)[0]
        return [[int(self.leaf_ids[j]), float(self.probs[i, j])] for j in order]

    def neighbour_evidence(self, i: int) -> list:
        """[[product index, cosine, label id], ...] nearest labelled products first."""
        ids = self.label_ids()
        return [
            [int(j), round(float(s), 4), int(ids[j])]
            for j, s in zip(self.neighbours[i], self.neighbour_sims[i])
            if j >= 0
        ]

    def evidence(self, i: int, codes: np.ndarray, min_cluster: int | None = None) -> dict:
        """JSON-able evidence for a flag: cluster make-up, neighbours, top suggestions, signals."""
        min_cluster = self.extra.get("min_cluster", 5) if min_cluster is None else min_cluster
        return {
            "cluster": cluster_evidence(codes, self.label_ids(), i, min_cluster),
            "neighbours": self.neighbour_evidence(i),
            "suggestions": self.top_suggestions(i),
            "signals": {s: round(float(1.0 - c[i]), 4) for s, c in self.components.items()},
            # The brand's other products carry the same label, and products like them of other
            # brands do not: a whole brand line may be misfiled (the suggestion is brand_out's).
            "brand_led": bool(np.asarray(self.extra.get("brand_led", np.zeros(i + 1, bool)))[i]),
        }


def _leaf_ids(leaf_paths: np.ndarray) -> np.ndarray:
    present = leaf_paths >= 0
    deepest = present.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1)
    return leaf_paths[np.arange(len(leaf_paths)), deepest]


def score_products(
    *,
    embeddings,
    taxonomy,
    codes,
    n_folds: int = 5,
    seed: int = 0,
    min_cluster: int = 5,
    knn: int = 10,
    signals=SIGNALS,
    brands=None,
    texts=None,
    device: str = "cpu",
    combiner: Combiner | None = None,
    self_supervision_rate: float = 0.03,
    params: SignalParams | None = None,
    mode: str = "pooled",
    reuse: Scores | None = None,
) -> Scores:
    """Score every product's label against its code neighbourhood, nearest neighbours and an
    out-of-fold classifier.

    ``reuse``: the Scores of the same products, embeddings and texts under other labels (the
    calibration copy reuses the catalog's): its text features are taken as they are, and its
    nearest labelled neighbours too where the same products are labelled.

    ``taxonomy`` (N, T) int64 holds the labels as they are (-1 absent). Without a ``combiner``, one
    is fitted: pool weights that best predict the given labels from the leave-self-out signals, and
    (``mode="stacked"``) a small stacker learned on a copy with ``self_supervision_rate`` of the
    labels moved on purpose (uniform, sibling and look-alike moves; brand moves are not used: a whole
    brand moved together looks like a confident, consistent label and taught the stacker to distrust
    confident labels). ``brands`` (one per product, "" unknown) adds the ``brand_out`` signal and the
    brand score, which lets the raw score find a brand moved together (see the module doc); where the
    brand score decides, the suggestion is ``brand_out``'s. ``texts`` (one per product, e.g. name and
    brand: ``product_words``) add ``text_features`` to the classifiers' inputs. ``mode="pooled"`` (the default, no
    copy needed): raw score = logistic of (pooled log-margin + classifier log-margin), the log-margin
    being log max_{k != label} p_k - log p_label; on the dev split (full BigBasket, seed 100) it
    ranked injected labels better than the stacker, the pool alone and the classifier alone.
    ``min_cluster`` is used by the evidence only.
    """
    signals = tuple(s for s in SIGNALS if s in (combiner.signals if combiner is not None else signals))
    if combiner is None and not _has_brands(brands):
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
    if mode not in ("stacked", "pooled"):
        raise ValueError(f'unknown mode "{mode}": choose stacked or pooled')
    params = params or SignalParams(n_folds=n_folds, seed=seed, knn=knn, device=device)
    leaf_paths, labels = leaf_classes(taxonomy)
    if len(leaf_paths) < 2:
        raise ValueError("scoring needs at least two distinct categories among the labelled products")
    minimum = MIN_LABELLED_PER_FOLD * params.n_folds
    if int((labels >= 0).sum()) < minimum:
        raise ValueError(
            f"scoring needs at least {minimum} categorized products ({params.n_folds} folds of "
            f"{MIN_LABELLED_PER_FOLD}); this catalog has {int((labels >= 0).sum())}"
        )
    parent_of = parent_groups(leaf_paths)
    lexical, known = None, None
    if reuse is not None and len(reuse.labels) != len(labels):
        raise ValueError(f"reuse= holds scores of {len(reuse.labels)} products, not {len(labels)}")
    if texts is not None:
        lexical = reuse.lexical if reuse is not None and reuse.lexical is not None else text_features(
            texts, seed=params.seed)
    if reuse is not None and np.array_equal(reuse.labels >= 0, labels >= 0) and reuse.neighbours.shape[1] == min(
            params.knn, int((labels >= 0).sum()) - 1):
        known = (reuse.neighbours, reuse.neighbour_sims)
    if combiner is not None and params.classifier_weight_decay is None:  # a copy is scored as its catalog was
        params = replace(params, classifier_weight_decay=combiner.classifier_weight_decay)
    inputs = None if lexical is None else np.hstack([embeddings, lexical])
    sig = compute_signals(embeddings, labels, len(leaf_paths), codes, params, signals, brands, inputs, known)
    params = replace(params, classifier_weight_decay=sig.classifier_weight_decay)

    if combiner is None:
        weights = fit_pool_weights(sig.probs, labels, params.device)
        combiner = fit_combiner(
            embeddings=embeddings, taxonomy=taxonomy, codes=codes, params=params, signals=signals,
            brands=brands, rate=self_supervision_rate, seed=seed, weights=weights, mode=mode,
            classifier_inputs=inputs,
        )
        combiner.classifier_weight_decay = sig.classifier_weight_decay
    q = pooled(sig.probs, combiner.weights)
    feats, _ = _features(sig.probs, q, labels, parent_of, brands)
    return _assemble(leaf_paths=leaf_paths, labels=labels, signal_probs=sig.probs, q=q, features=feats,
                     combiner=combiner, neighbours=sig.neighbours, neighbour_sims=sig.neighbour_sims,
                     lexical=lexical, min_cluster=min_cluster)


def _assemble(*, leaf_paths, labels, signal_probs, q, features, combiner, neighbours, neighbour_sims, lexical,
              min_cluster) -> Scores:
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
        extra={"min_cluster": min_cluster, "brand_led": brand_led & ~unlabelled}, lexical=lexical,
        features=features,
    )


def rescore(scores: Scores, combiner: Combiner) -> Scores:
    """The same signals under another combiner (e.g. another ``score``): nothing is refitted."""
    q = pooled(scores.signal_probs, combiner.weights)
    return _assemble(leaf_paths=scores.leaf_paths, labels=scores.labels, signal_probs=scores.signal_probs, q=q,
                     features=scores.features, combiner=combiner, neighbours=scores.neighbours,
                     neighbour_sims=scores.neighbour_sims, lexical=scores.lexical,
                     min_cluster=scores.extra.get("min_cluster", 5))


def best_other(probs: np.ndarray, labels: np.ndarray, k: int = 1) -> np.ndarray:
    """(N,) (or (N, k) for k > 1) most probable classes other than each row's label (-1: none)."""
    masked = np.array(probs, dtype=np.result_type(probs, np.float32), copy=True)  # exact copy
    rows = np.flatnonzero(labels >= 0)
    masked[rows, labels[rows]] = -np.inf
    if k == 1:
        return masked.argmax(1)  # the first of tied maxima, like the stable sort below
    return np.argsort(-masked, axis=1, kind="stable")[:, :k]


def _has_brands(brands) -> bool:
    """At least two distinct non-empty brands: brand-grouped folds mean something."""
    if brands is None:
        return False
    return len({k for k in _brand_keys(brands) if not k.startswith("\x00")}) >= 2


def copy_labels_of(noisy: np.ndarray, leaf_paths: np.ndarray) -> np.ndarray:
    """Labels of a noisy copy in the original catalog's leaf index space (-1 unlabeled)."""
    lookup = {tuple(r): k for k, r in enumerate(leaf_paths)}
    return np.array([lookup[tuple(r)] if (r >= 0).any() else -1 for r in noisy], dtype=np.int64)


def fit_combiner(*, embeddings, taxonomy, codes, params: SignalParams, signals=SIGNALS, brands=None,
                 rate=0.03, seed=0, weights: dict | None = None, mode: str = "stacked",
                 classifier_inputs=None) -> Combiner:
    """The stacked raw-score model, learned from a copy with known wrong labels (uniform, sibling and
    look-alike moves only). ``weights`` (pool weights) are fitted on the copy when not given."""
    leaf_paths, labels = leaf_classes(taxonomy)
    if mode == "pooled":
        if weights is None:
            sig = compute_signals(embeddings, labels, len(leaf_paths), codes, params, signals, brands,
                                  classifier_inputs)
            weights = fit_pool_weights(sig.probs, labels, params.device)
        names = ["pooled:self", "pooled:parent", "pooled:margin"]
        names += [f"{s}:{kind}" for s in signals for kind in ("self", "margin")]
        names += ["brand_out:group"] if "brand_out" in signals else []
        zeros = [0.0] * len(names)
        coef = [1.0 if n in POOLED_SCORE else 0.0 for n in names]
        return Combiner(signals=tuple(signals), weights=weights, feature_names=names, mean=zeros,
                        scale=[1.0] * len(names), coef=coef, intercept=0.0, mode="pooled")
    noisy, injected = inject_mixture(taxonomy, rate=rate, seed=seed + 101, embeddings=embeddings)
    copy_labels = copy_labels_of(noisy, leaf_paths)  # the copy keeps the original leaf index space
    sig = compute_signals(embeddings, copy_labels, len(leaf_paths), codes, params, signals, brands,
                          classifier_inputs)
    if weights is None:
        weights = fit_pool_weights(sig.probs, labels, params.device)
    q = pooled(sig.probs, weights)
    feats, names = _features(sig.probs, q, copy_labels, parent_groups(leaf_paths), brands)
    feats = np.where(np.isfinite(feats), feats, 0.0)
    keep = copy_labels >= 0
    mean, scale = feats[keep].mean(0), feats[keep].std(0) + 1e-9
    coef, intercept = _fit_nonnegative_logistic((feats[keep] - mean) / scale, injected[keep])
    return Combiner(
        signals=tuple(signals), weights=weights, feature_names=names, mean=mean.tolist(),
        scale=scale.tolist(), coef=coef.tolist(), intercept=intercept, mode="stacked",
    )


def cluster_evidence(codes, labels, i: int, min_cluster: int = 5) -> dict:
    """The deepest code prefix of product ``i`` with at least ``min_cluster`` members (the product
    included), backing off to coarser levels, and its label make-up (top 5, unlabeled left out)."""
    codes = np.asarray(codes)
    labels = np.asarray(labels)
    for level in range(codes.shape[1], 0, -1):
        members = np.flatnonzero((codes[:, :level] == codes[i, :level]).all(axis=1))
        if len(members) >= min_cluster or level == 1:
            break
    member_labels = labels[members]
    values, counts = np.unique(member_labels[member_labels >= 0], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:5]
    return {
        "prefix": "_".join(str(int(c)) for c in codes[i, :level]),
        "level": int(level),
        "size": int(len(members)),
        "composition": [[int(values[j]), int(counts[j])] for j in order],
    }


def taxonomy_issues(scores: Scores, *, signal: str = "codes", top: int = 20, min_overlap: float = 0.0) -> list:
    """Category pairs the signal cannot tell apart, like cleanlab's ``find_overlapping_classes``.

    Joint of (given label a, signal's distribution b) over labelled products; the overlap of a pair
    is joint[a, b] + joint[b, a]. Returns ``[(label_id_a, label_id_b, overlap, n), ...]`` with n the
    expected number of products of one filed where the other is predicted.
    """
    probs = scores.probs if signal == "pooled" else scores.signal_probs[signal]
    keep = scores.labels >= 0
    k = len(scores.leaf_ids)
    confusion = np.zeros((k, k))
    np.add.at(confusion, scores.labels[keep], probs[keep])
    np.fill_diagonal(confusion, 0.0)
    sym = confusion + confusion.T
    joint = sym / max(int(keep.sum()), 1)
    a, b = np.triu_indices(k, 1)
    order = np.argsort(-joint[a, b])[:top]
    return [
        (int(scores.leaf_ids[a[j]]), int(scores.leaf_ids[b[j]]), float(joint[a[j], b[j]]), int(round(sym[a[j], b[j]])))
        for j in order
        if joint[a[j], b[j]] > min_overlap
    ]
