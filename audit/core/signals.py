"""The audit's signals: for every product, a distribution over leaves computed without its own label.

- ``classifier``: out-of-fold softmax regression on the embeddings (cleanlab's self-confidence
  signal), and on the products' own words when texts are given (``text_features``: words that name a
  category count in full, where a sentence embedding blurs them with their context);
- ``codes``: label make-up of the product's code prefixes, deepest level backed off to coarser ones
  (leave-self-out);
- ``knn``: similarity-weighted label vote of the nearest labelled neighbours (itself left out);
- ``brand_out`` (when brands are given): the same classifier with folds grouped by brand, so a
  product's brand is never in its training fold. It is weaker alone (on BigBasket the brand says a
  lot about the category) and stays out of the pool (``combine.py``), but it is the only signal that
  sees a whole brand moved together: the other three learn the wrong brand -> category from the
  brand's other, equally wrong, labels.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import coo_matrix, csr_matrix, hstack, vstack
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

from audit.core.noise import prefix_ranks
from quantizer.core.neighbours import nearest_neighbours
from quantizer.core.sampling import row_sample

SIGNALS = ("classifier", "codes", "knn", "brand_out")
MIN_LABELLED_PER_FOLD = 4  # fewer, and an out-of-fold classifier has nothing to learn from
# LSA dimensions of the texts' TF-IDF appended to the classifier's inputs. BigBasket, clean labels,
# 5-fold top-1 of the classifier: embeddings alone 0.752, + 128 dims 0.774, + 256 dims 0.783
# (bench/studies/classifier_inputs.py; docs/audit.md). A linear SVM on the full sparse TF-IDF reached 0.811
# in a side experiment, but is too slow to refit in every fold of every audit.
TEXT_DIMS = 256
TEXT_FIT_ROWS = 100_000  # the SVD of the text features is fitted on at most this many products (a seeded sample)
# The classifiers' L2 weight. The right amount shrinks as a catalog grows: 1e-3, chosen on the full
# BigBasket, under-regularised 6,000-product catalogs (AP of 1 - p(label), uniform moves, seed 0:
# Instacart 0.564 at 1e-3 vs 0.641 at 1e-2; BigBasket cut to two levels 0.846 vs 0.905). So each audit
# picks from this grid the value whose classifier best predicts the given labels of one held-out fold
# (log-loss; no injected labels involved), as cleanlab's baseline chooses its C.
WEIGHT_DECAY_GRID = (5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2)
WEIGHT_DECAY_FIT_ROWS = 100_000  # the grid is tried on at most this many labelled products (a seeded sample)
CLASSIFIER_MAX_ITER = 100  # L-BFGS iterations of each classifier fit
# Chosen in BigBasket development runs (docs/audit.md, "Where every constant comes from"):
KNN = 10  # labelled neighbours that vote
KNN_TEMPERATURE = 0.1  # neighbour weight exp((cos - 1) / T): near-duplicates dominate
KNN_PRIOR = 0.5  # pseudo-weight of the catalog-wide label prior in the kNN vote
CODE_PRIOR = 2.0  # pseudo-count backing a prefix's make-up off to its parent prefix
# A depth's prefix counts are held dense up to this many (prefix, leaf) cells (128 MiB of float64), where
# gathering whole rows beats scattering a sparse matrix's entries; sparse (CSR) above.
CODE_DENSE_CELLS = 2**24


@dataclass
class Signals:
    sources: dict  # signal name -> rows (R,) -> (R, K) float32 distributions, each row sums to 1
    neighbours: np.ndarray  # (N, KNN) indices of the nearest labelled products, -1 padded
    neighbour_sims: np.ndarray  # (N, KNN) cosine similarities
    classifier_weight_decay: float | None = None  # what the classifiers used (chosen or given)

    def probs(self, rows: np.ndarray, names=None) -> dict:
        """Signal name -> (len(rows), K) float32 for ``rows`` (increasing indices), of every signal or of
        ``names``; computed on each call."""
        return {name: source(rows) for name, source in self.sources.items() if names is None or name in names}


# ---------------------------------------------------------------------------------------------
# folds


def stratified_folds(labels: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    order = np.lexsort((rng.random(len(labels)), labels))
    folds = np.empty(len(labels), dtype=np.int64)
    folds[order] = np.arange(len(labels)) % n_folds
    return folds


def brand_keys(brands, alone: np.ndarray | None = None) -> np.ndarray:
    """(N,) normalised brand names; a product without a brand (or marked ``alone``) gets a key of
    its own, so it is a brand of one."""
    keys = np.asarray([("" if b is None else str(b).strip().lower()) for b in brands], dtype=object)
    alone = np.flatnonzero((keys == "") if alone is None else (keys == "") | alone)
    keys[alone] = [f"\x00{i}" for i in alone]
    return keys


def brand_ids(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inverse, counts) of ``np.unique(keys)`` for ``brand_keys``, in the same order, the strings compared as
    fixed-width unicode in C (a million keys: 1.0 s against 5.8 s as Python objects on 2 cores)."""
    _, inverse, counts = np.unique(keys.astype(str), return_inverse=True, return_counts=True)
    return inverse.reshape(-1), counts


def has_brands(brands) -> bool:
    """At least two distinct non-empty brands: brand-grouped folds mean something."""
    if brands is None:
        return False
    return len({k for k in brand_keys(brands) if not k.startswith("\x00")}) >= 2


def brand_folds(brands, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Folds of whole brands, largest brands first onto the lightest fold, so the folds stay about
    equal in size."""
    group, sizes = brand_ids(brand_keys(brands))
    fold_of = np.empty(len(sizes), dtype=np.int64)
    load = np.zeros(n_folds)
    for g in np.lexsort((rng.random(len(sizes)), -sizes)):
        fold_of[g] = load.argmin()
        load[fold_of[g]] += sizes[g]
    return fold_of[group]


def brand_groups(labels: np.ndarray, brands) -> np.ndarray:
    """(N,) id of each product's (brand, label) group; products without a brand or a label are alone."""
    brand = brand_ids(brand_keys(brands, alone=labels < 0))[0].astype(np.int64)
    pair = brand * (int(labels.max(initial=0)) + 2) + (labels + 1)  # one int64 per (brand, label)
    return np.unique(pair, return_inverse=True)[1].reshape(-1)


# ---------------------------------------------------------------------------------------------
# the classifiers' words


def product_words(name, brand) -> str:
    """The text ``text_features`` reads for one product: its name and brand."""
    return f"{name or ''} {brand or ''}".strip()


def text_terms(texts, workers: int | None = None) -> csr_matrix | None:
    """(N, terms) TF-IDF of the texts' word 1-2-grams and in-word character 2-4-grams (`TEXT_ANALYZERS`), what
    `text_features` reduces; None when no term is in TEXT_MIN_DF texts. Counted in `workers` processes (default
    `text_workers`), with the same result for any number. Unsupervised and independent of the codes: the pipeline
    counts them while its run trains (`audit.runs.audit_texts`)."""
    texts = ["" if t is None else str(t) for t in texts]
    workers = text_workers(len(texts)) if workers is None else workers
    blocks = [block for analyzer in TEXT_ANALYZERS if (block := tfidf_matrix(texts, analyzer, workers)) is not None]
    return hstack(blocks).tocsr() if blocks else None


def text_features(texts, dims: int = TEXT_DIMS, seed: int = 0, max_fit: int = TEXT_FIT_ROWS,
                  workers: int | None = None, device: str = "cpu", terms: csr_matrix | None = None,
                  ) -> np.ndarray | None:
    """(N, d <= dims) lexical features: the texts' TF-IDF (`text_terms`, or `terms` where they are counted
    already) reduced by truncated SVD (LSA), rows L2-normalised. Unsupervised (no labels), deterministic for a
    seed and device. None when the texts hold too few distinct terms to give two dimensions. Above ``max_fit``
    texts the SVD is fitted on a seeded sample of that many and projects all of them (the SVD was more than
    half of the scoring time at a million products); the vocabulary is always the whole catalog's. On a
    CUDA ``device`` the SVD is ``randomized_svd_torch`` there (the same algorithm as scikit-learn's on the
    CPU, with other random draws: the same subspace, not the same bits)."""
    if terms is not None and terms.shape[0] != len(texts):
        raise ValueError(f"terms= holds {terms.shape[0]} rows for {len(texts)} texts")
    tfidf = text_terms(texts, workers) if terms is None else terms
    if tfidf is None:
        return None
    k = min(dims, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
    if k < 2:
        return None
    sample = row_sample(tfidf.shape[0], max_fit, np.random.default_rng(seed))
    if torch.device(device).type == "cuda":
        fit = tfidf[sample] if len(sample) < tfidf.shape[0] else tfidf
        components = randomized_svd_torch(fit, k, seed=seed, device=device)
        z = (_torch_csr(tfidf, device) @ components).cpu().numpy()
    elif len(sample) < tfidf.shape[0]:
        z = TruncatedSVD(k, random_state=seed).fit(tfidf[sample]).transform(tfidf).astype(np.float32)
    else:
        z = TruncatedSVD(k, random_state=seed).fit_transform(tfidf).astype(np.float32)
    return z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-9)


def randomized_svd_torch(matrix: csr_matrix, k: int, *, seed: int = 0, device: str = "cpu",
                         n_oversamples: int = 10, n_iter: int = 5) -> torch.Tensor:
    """(n_columns, k) float32 top-k right singular vectors of a sparse matrix, on ``device``: Halko et al.'s
    randomized range finder with ``n_iter`` QR-normalised power iterations, as scikit-learn's
    ``TruncatedSVD`` (its defaults: 10 oversamples, 5 iterations), the sparse products in torch. Signs are
    fixed so that each vector's largest entry is positive."""
    rows, columns = _torch_csr(matrix, device), _torch_csr(matrix.T.tocsr(), device)
    generator = torch.Generator(device=device).manual_seed(seed)
    width = min(k + n_oversamples, min(matrix.shape))
    basis = rows @ torch.randn(matrix.shape[1], width, generator=generator, device=device)  # (n, width)
    for _ in range(n_iter):
        basis = rows @ torch.linalg.qr(columns @ torch.linalg.qr(basis).Q).Q
    basis = torch.linalg.qr(basis).Q
    projected = columns @ basis  # (n_columns, width): B^T, B = basis^T @ matrix
    q, r = torch.linalg.qr(projected)  # B^T = q r, so B = r^T q^T
    _, _, vh = torch.linalg.svd(r.T)  # r^T = u s vh: B's right singular vectors are q @ vh^T
    vectors = q @ vh.T[:, :k]
    sign = torch.sign(vectors.gather(0, vectors.abs().argmax(0, keepdim=True)))
    return vectors * torch.where(sign == 0, 1.0, sign)


def _torch_csr(matrix: csr_matrix, device: str) -> torch.Tensor:
    """A scipy CSR matrix as a float32 torch sparse CSR tensor on ``device``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
        warnings.filterwarnings("ignore", "Sparse invariant checks are implicitly disabled", UserWarning)
        return torch.sparse_csr_tensor(torch.as_tensor(matrix.indptr, dtype=torch.int64),
                                       torch.as_tensor(matrix.indices, dtype=torch.int64),
                                       torch.as_tensor(matrix.data, dtype=torch.float32), size=matrix.shape,
                                       device=device, check_invariants=False)


TEXT_ANALYZERS = ({"ngram_range": (1, 2)}, {"analyzer": "char_wb", "ngram_range": (2, 4)})
TEXT_MIN_DF = 2
TEXT_WORKERS_ABOVE = 50_000  # texts; fewer are counted in this process (a pool's start costs more than it saves)


def text_workers(n_texts: int) -> int:
    """Processes to count `n_texts` texts in: one a core (at most 16) above TEXT_WORKERS_ABOVE texts; one in a
    daemonic process (a worker of Celery's prefork pool), which may not start children."""
    if n_texts <= TEXT_WORKERS_ABOVE or multiprocessing.current_process().daemon:
        return 1
    return min(os.cpu_count() or 1, 16)


def tfidf_matrix(texts: list[str], analyzer: dict, workers: int = 1):
    """TfidfVectorizer(**analyzer, min_df=TEXT_MIN_DF, sublinear_tf=True).fit_transform(texts), with the
    texts counted in `workers` processes: each counts its slice's terms, the slices' vocabularies merge
    (sorted, as scikit-learn sorts them), terms in fewer than TEXT_MIN_DF texts go, then one TfidfTransformer
    over the whole. None when no term is in TEXT_MIN_DF texts."""
    bounds = np.linspace(0, len(texts), max(1, min(workers, len(texts))) + 1).round().astype(int)
    jobs = [(texts[a:b], analyzer) for a, b in zip(bounds, bounds[1:])]
    parts = None
    if len(jobs) > 1:
        try:
            with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("fork")) as pool:
                parts = list(pool.map(_count_terms, jobs))
        except (AssertionError, OSError):  # no children here (a daemonic process, no resources): count here
            parts = None
    if parts is None:
        parts = [_count_terms(job) for job in jobs]
    vocabulary = np.unique(np.concatenate([terms for terms, _ in parts]))
    places = [np.searchsorted(vocabulary, terms) for terms, _ in parts]
    df = sum(np.bincount(where[counts.indices], minlength=len(vocabulary)) for where, (_, counts) in zip(places, parts))
    keep = df >= TEXT_MIN_DF
    if not keep.any():
        return None
    column = np.where(keep, np.cumsum(keep) - 1, -1)
    counts = vstack([_kept_columns(counts, column[where], int(keep.sum())) for where, (_, counts) in zip(places, parts)])
    return TfidfTransformer(sublinear_tf=True).fit_transform(counts.tocsr())


def _count_terms(job) -> tuple[np.ndarray, csr_matrix]:
    """A slice's terms (sorted) and its (texts, terms) counts, every term kept. scikit-learn leaves a row's
    terms in the order they first appeared in the slice, which would make the rows' norms, and so the
    features' last bits, depend on the slicing."""
    texts, analyzer = job
    vectorizer = CountVectorizer(**analyzer, dtype=np.float64)
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # no term at all in the slice
        return np.array([], dtype=object), csr_matrix((len(texts), 0))
    counts.sort_indices()  # a row's terms in alphabetical order: the same matrix however the texts are sliced
    return vectorizer.get_feature_names_out().astype(object), counts


def _kept_columns(counts: csr_matrix, column: np.ndarray, width: int) -> csr_matrix:
    """`counts` with its columns renumbered by `column` (-1: dropped); the order within a row is kept, since
    both numberings are alphabetical."""
    cols = column[counts.indices]
    kept = cols >= 0
    indptr = np.concatenate([[0], np.cumsum(kept)])[counts.indptr]
    return csr_matrix((counts.data[kept], cols[kept], indptr), shape=(counts.shape[0], width))


# ---------------------------------------------------------------------------------------------
# classifier and brand_out


@contextlib.contextmanager
def tf32_matmuls():
    """TF32 matmuls inside the block (CUDA on Ampere and later; no effect on the CPU), the caller's setting
    restored after. The classifiers' fits and predictions use it: at a million products on an H200 the five
    fold fits take 6.0 s instead of 15.4 s, and p(label) moves by at most 0.0036 (mean 1.5e-4), with the same
    AP and top-1 (bench/studies/gpu_fits.py, docs/benchmarks.md)."""
    matmul = torch.backends.cuda.matmul
    saved, matmul.allow_tf32 = matmul.allow_tf32, True
    try:
        yield
    finally:
        matmul.allow_tf32 = saved


def fit_softmax_regression(x, y, n_classes: int, weight_decay: float, max_iter: int = CLASSIFIER_MAX_ITER):
    """Multinomial logistic regression, full batch L-BFGS (TF32 matmuls on a GPU). Returns (w (d, K), b (K,))."""
    w = torch.zeros(x.shape[1], n_classes, device=x.device, requires_grad=True)
    b = torch.zeros(n_classes, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + weight_decay * (w * w).sum()  # logits (n, K)
        loss.backward()
        return loss

    with tf32_matmuls():
        opt.step(closure)
    return w.detach(), b.detach()


def choose_weight_decay(inputs, labels, n_leaves, *, n_folds: int = 5, seed: int = 0, device: str = "cpu",
                        max_iter: int = CLASSIFIER_MAX_ITER, grid=WEIGHT_DECAY_GRID) -> float:
    """The grid value whose classifier, trained on all folds but the first, gives the lowest log-loss of
    the given labels of the first fold (the stratified folds of ``seed``, as ``classifier_probs``), over
    the labelled products or a seeded sample of ``WEIGHT_DECAY_FIT_ROWS`` of them (at a million products
    the grid would otherwise be six more fits on 800,000 rows each)."""
    device = torch.device(device)
    labelled = np.flatnonzero(labels >= 0)
    labelled = labelled[row_sample(len(labelled), WEIGHT_DECAY_FIT_ROWS, np.random.default_rng(seed))]
    folds = stratified_folds(labels[labelled], n_folds, np.random.default_rng(seed))
    train, test = labelled[folds != 0], labelled[folds == 0]
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32), device=device)
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    y_train = torch.as_tensor(labels[train], device=device)
    y_test = torch.as_tensor(labels[test], device=device)
    losses = []
    for weight_decay in grid:
        w, b = fit_softmax_regression((x[train] - mean) / std, y_train, n_leaves, weight_decay, max_iter)
        with tf32_matmuls():
            logits = ((x[test] - mean) / std) @ w + b
        losses.append(float(F.cross_entropy(logits, y_test)))
    return float(grid[int(np.argmin(losses))])


def fold_of(labels: np.ndarray, n_folds: int, seed: int, brands=None) -> np.ndarray:
    """(N,) the fold each labelled product is held out of, -1 for an unlabelled one: folds stratified by label, or
    of whole brands with ``brands`` (``brand_out``), drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    labelled = np.flatnonzero(labels >= 0)
    fold = np.full(len(labels), -1, np.int64)
    if brands is None:
        fold[labelled] = stratified_folds(labels[labelled], n_folds, rng)
    else:
        fold[labelled] = brand_folds(np.asarray(brands, dtype=object)[labelled], n_folds, rng)
    return fold


def fit_fold(x: torch.Tensor, labels: np.ndarray, fold: np.ndarray, f: int, n_leaves: int, weight_decay: float,
             max_iter: int = CLASSIFIER_MAX_ITER) -> tuple:
    """(mean, std, w, b): fold ``f``'s softmax regression, fitted on the labelled products of the other folds
    (``fold_of``), its inputs ``x`` (N, d) standardised by their mean and std."""
    train = np.flatnonzero((fold >= 0) & (fold != f))
    xt = x[train]
    mean, std = xt.mean(0), xt.std(0) + 1e-6
    y = torch.as_tensor(labels[train], device=x.device)
    return (mean, std, *fit_softmax_regression((xt - mean) / std, y, n_leaves, weight_decay, max_iter))


class FoldClassifiers:
    """Out-of-fold softmax regressions, one per fold (``fit_fold``); ``probs(rows)`` predicts any rows: a labelled
    product by the model of the fold it was held out of, an unlabelled one by the mean of the fold models. With
    ``brands``, folds are whole brands (``brand_out``). ``models``: the folds' (mean, std, w, b) where they were
    fitted already (a fanned-out audit fits each fold in a chunk of its own, ``audit.runs``)."""

    def __init__(self, inputs, labels, n_leaves, *, n_folds: int, seed: int, device: str, weight_decay: float,
                 max_iter: int = CLASSIFIER_MAX_ITER, brands=None, models=None):
        self.device, self.n_leaves, self.n_folds = torch.device(device), n_leaves, n_folds
        self.x = torch.as_tensor(np.asarray(inputs, dtype=np.float32), device=self.device)  # (N, d)
        self.fold = fold_of(labels, n_folds, seed, brands)  # (N,) the fold a labelled product is held out of
        if models is None:
            models = [fit_fold(self.x, labels, self.fold, f, n_leaves, weight_decay, max_iter) for f in range(n_folds)]
        elif len(models) != n_folds or any(tuple(m[2].shape) != (self.x.shape[1], n_leaves) for m in models):
            raise ValueError(f"models= holds {len(models)} folds of other shapes than {n_folds} of "
                             f"({self.x.shape[1]}, {n_leaves})")
        self.models = [tuple(torch.as_tensor(a, device=self.device) for a in model) for model in models]

    def _predict(self, f: int, idx: np.ndarray) -> np.ndarray:
        mean, std, w, b = self.models[f]
        with tf32_matmuls():
            return torch.softmax(((self.x[idx] - mean) / std) @ w + b, dim=1).cpu().numpy()

    def probs(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), K) float32 for ``rows`` (increasing indices)."""
        out = np.zeros((len(rows), self.n_leaves), dtype=np.float32)
        fold = self.fold[rows]
        unlabelled = np.flatnonzero(fold < 0)
        for f in range(self.n_folds):
            test = np.flatnonzero(fold == f)
            out[test] = self._predict(f, rows[test])
            if len(unlabelled):
                out[unlabelled] += self._predict(f, rows[unlabelled]) / self.n_folds
        return out


def classifier_probs(inputs, labels, n_leaves, **fold_args) -> np.ndarray:
    """(N, K) out-of-fold probabilities of every product at once (``FoldClassifiers``' arguments)."""
    return FoldClassifiers(inputs, labels, n_leaves, **fold_args).probs(np.arange(len(labels)))


# ---------------------------------------------------------------------------------------------
# knn and codes


def nearest_labelled(embeddings, labels, k, device, chunk=2048):
    """(N, k) indices and cosines of each product's nearest labelled products, itself left out
    (exact up to `quantizer.core.neighbours.EXACT_LIMIT` products, probed cells above)."""
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32), device=torch.device(device))
    idx, sims = nearest_neighbours(x, k, base=torch.as_tensor(np.asarray(labels) >= 0), chunk=chunk)
    return idx.cpu().numpy(), sims.cpu().numpy()


def knn_probs(neighbours, sims, labels, n_leaves, prior, chunk: int = 8192, device: str = "cpu") -> np.ndarray:
    """(R, K) similarity-weighted label vote of the neighbours of R products ((R, k) rows of
    ``nearest_labelled``; ``labels`` the catalog's) plus ``KNN_PRIOR`` times the prior, normalised;
    `chunk` rows at a time on ``device``."""
    n = len(neighbours)
    out = np.empty((n, n_leaves), np.float32)
    labels_t = torch.as_tensor(np.asarray(labels), device=device)
    prior_t = KNN_PRIOR * torch.as_tensor(np.asarray(prior, np.float64), device=device)
    for start in range(0, n, chunk):
        nb = torch.as_tensor(neighbours[start:start + chunk], device=device)
        weights = torch.exp((torch.as_tensor(sims[start:start + chunk], device=device).to(torch.float64) - 1.0)
                            / KNN_TEMPERATURE)  # (chunk, k)
        weights = torch.where(nb >= 0, weights, 0.0)  # -1: padding where fewer were found
        # (neighbours are labelled products; a label of -1 counts for the last leaf, as numpy's indexing did)
        leaf = labels_t[nb.clamp(min=0)] % n_leaves
        votes = torch.zeros((len(nb), n_leaves), dtype=torch.float64, device=device)
        cell = torch.arange(len(nb), device=device)[:, None] * n_leaves + leaf  # (chunk, k) flat cells
        for j in range(nb.shape[1]):  # one neighbour a row at a time: each cell sums in the neighbours' order
            votes.view(-1).index_add_(0, cell[:, j], weights[:, j])  # distinct cells: no race on any device
        votes += prior_t
        out[start:start + chunk] = (votes / votes.sum(1, keepdim=True)).to(torch.float32).cpu().numpy()
    return out


def prefix_ids(codes: np.ndarray, depth: int) -> np.ndarray:
    """(N,) id of each product's code prefix of ``depth`` levels (ids in the prefixes' lexicographic order)."""
    return prefix_ranks(np.asarray(codes)[:, :depth])[-1]


class CodeVotes:
    """Leave-self-out label make-up of each code prefix, depth 1 backed off to the catalog prior,
    depth d to depth d-1 (Dirichlet smoothing with ``CODE_PRIOR`` pseudo-counts). Prefix counts are
    kept sparse (CSR on ``device``); ``probs(rows)`` smooths `chunk` rows at a time there, so memory beyond
    its result stays small."""

    def __init__(self, codes, labels, n_leaves, prior, device: str = "cpu"):
        labelled = np.flatnonzero(labels >= 0)
        self.device, self.n_leaves = torch.device(device), n_leaves
        self.labels = torch.as_tensor(np.asarray(labels), device=self.device)
        self.prior = torch.as_tensor(np.asarray(prior, np.float64), device=self.device)
        self.groups, self.counts, self.sizes = [], [], []
        for g in prefix_ranks(codes):  # each depth's prefix ids
            c = coo_matrix((np.ones(len(labelled)), (g[labelled], labels[labelled])),
                           shape=(int(g.max()) + 1, n_leaves)).tocsr()
            self.groups.append(torch.as_tensor(g, device=self.device))
            if c.shape[0] * c.shape[1] <= CODE_DENSE_CELLS:  # few prefixes: a dense table, rows gathered whole
                self.counts.append(torch.as_tensor(c.toarray(), device=self.device))
            else:
                self.counts.append(tuple(torch.as_tensor(a, device=self.device).to(dtype) for a, dtype in (
                    (c.indptr, torch.int64), (c.indices, torch.int64), (c.data, torch.float64))))
            self.sizes.append(torch.as_tensor(np.asarray(c.sum(axis=1)).ravel(), device=self.device))

    def probs(self, rows: np.ndarray, chunk: int = 8192) -> np.ndarray:
        out = np.empty((len(rows), self.n_leaves), np.float32)
        for start in range(0, len(rows), chunk):
            part = torch.as_tensor(rows[start:start + chunk], device=self.device)
            own_label = self.labels[part]
            mine = torch.nonzero(own_label >= 0).ravel()
            p = self.prior.expand(len(part), self.n_leaves)
            for g, counts, sizes in zip(self.groups, self.counts, self.sizes):
                own = counts[g[part]] if torch.is_tensor(counts) else _csr_rows(*counts, g[part], self.n_leaves)
                own.view(-1)[mine * self.n_leaves + own_label[mine]] -= 1.0  # leave the product out
                size = sizes[g[part]] - (own_label >= 0).to(torch.float64)  # own's row sums (whole numbers: exact)
                own += CODE_PRIOR * p  # in place: (own + CODE_PRIOR * p) / (size + CODE_PRIOR)
                own /= size[:, None] + CODE_PRIOR
                p = own
            out[start:start + chunk] = p.to(torch.float32).cpu().numpy()
        return out


def _csr_rows(indptr, indices, data, rows, width: int) -> torch.Tensor:
    """Dense (len(rows), width) of the CSR matrix (indptr, indices, data)'s ``rows``, tensors on one device."""
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    out = torch.zeros((len(rows), width), dtype=data.dtype, device=data.device)
    at = torch.repeat_interleave(torch.arange(len(rows), device=data.device), lengths)  # the row of each entry
    first = torch.cumsum(lengths, 0) - lengths  # where each row's entries start among them all
    entry = starts[at] + torch.arange(len(at), device=data.device) - first[at]
    out.view(-1)[at * width + indices[entry]] = data[entry]
    return out


def code_probs(codes, labels, n_leaves, prior, chunk: int = 8192) -> np.ndarray:
    """(N, K) ``CodeVotes`` of every product at once."""
    return CodeVotes(codes, labels, n_leaves, prior).probs(np.arange(len(labels)), chunk)


# ---------------------------------------------------------------------------------------------


def label_prior(labels: np.ndarray, n_leaves: int) -> np.ndarray:
    """(K,) the catalog's label frequencies, add-one smoothed."""
    prior = np.bincount(labels[labels >= 0], minlength=n_leaves).astype(np.float64) + 1.0
    return prior / prior.sum()


def compute_signals(embeddings, labels, n_leaves, codes, *, n_folds: int, seed: int, device: str,
                    classifier_folds: int | None = None,
                    weight_decay: float | None = None, max_iter: int = CLASSIFIER_MAX_ITER, signals=SIGNALS,
                    brands=None, classifier_inputs=None, neighbours=None, fold_models=None) -> Signals:
    """Fit what each signal needs (fold classifiers, prefix counts, neighbours); ``Signals.probs(rows)``
    then gives any rows' distributions. ``classifier_inputs`` (default: the embeddings) feed the two
    classifiers; neighbours and codes always come from the embeddings. ``neighbours``: ((N, k) indices,
    (N, k) cosines) from ``nearest_labelled`` over the same labelled products, when already computed.
    ``weight_decay`` None: chosen from ``WEIGHT_DECAY_GRID`` (``choose_weight_decay``). ``n_folds``: folds of
    ``brand_out`` and of that choice; ``classifier_folds`` (default ``n_folds``): of ``classifier``.
    ``fold_models``: {"classifier" / "brand_out": each fold's (mean, std, w, b)} where fitted already."""
    fold_models = fold_models or {}
    x = embeddings if classifier_inputs is None else classifier_inputs
    prior = label_prior(labels, n_leaves)
    neighbours, sims = neighbours or nearest_labelled(embeddings, labels, KNN, device)
    if weight_decay is None and ("classifier" in signals or "brand_out" in signals):
        weight_decay = choose_weight_decay(x, labels, n_leaves, n_folds=n_folds, seed=seed, device=device,
                                           max_iter=max_iter)
    fold_args = dict(n_folds=n_folds, seed=seed, device=device, weight_decay=weight_decay, max_iter=max_iter)
    sources = {}
    if "classifier" in signals:
        sources["classifier"] = FoldClassifiers(x, labels, n_leaves, models=fold_models.get("classifier"), **{
            **fold_args, "n_folds": classifier_folds or n_folds}).probs
    if "codes" in signals:
        sources["codes"] = CodeVotes(codes, labels, n_leaves, prior, device).probs
    if "knn" in signals:
        sources["knn"] = lambda rows: knn_probs(neighbours[rows], sims[rows], labels, n_leaves, prior, device=device)
    if "brand_out" in signals:
        if brands is None:
            raise ValueError('signal "brand_out" needs brands: pass brands= (one per product)')
        sources["brand_out"] = FoldClassifiers(x, labels, n_leaves, **fold_args, brands=brands,
                                               models=fold_models.get("brand_out")).probs
    return Signals(sources, neighbours, sims, weight_decay)
