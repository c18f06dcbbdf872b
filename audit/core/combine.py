"""From the signals to a suggestion and a raw score.

A log-linear pool of the signals (``classifier``, ``codes``, ``knn``), with weights fitted to predict
the given labels, is the suggestion distribution: the suggested fix is its most probable leaf other
than the label. The raw score is the logistic of -log of the mean of q(label) and p_classifier(label), the
pool's and the classifier's probability of the given label (the classifier is the sharpest single signal
for uniform moves, the pool for sibling and look-alike moves), or the brand score less
``Combiner.brand_offset`` where that is larger: the ``brand_out`` log-margin averaged over the products
sharing a brand and a label, which finds a brand moved together (its suggestion then comes from
``brand_out``). ``calibration.py`` turns the raw score into a probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from audit.core.signals import brand_groups

EPS = 1e-6
POOL_SIGNALS = ("classifier", "codes", "knn")  # brand_out is kept out of the pool (signals.py)
# The raw score is the logistic of -log of the mean probability of the label under these feature columns'
# signals (each column is -log(p(label) + EPS)). Chosen leave one catalog out on 6,000-product catalogs of five
# shapes and four regimes, seed 0 (bench/studies/audit_signals.py; docs/audit.md, "Today's raw score"): picked
# in every fold, its worst cell +0.018 AP over cleanlab (Instacart's uniform and look-alike moves), where the
# sum of the same two columns had +0.012 and a mean with a third, embeddings-only classifier +0.013. A mean of
# probabilities, not a sum of logs: a label is suspect where both signals doubt it, and one signal's near-zero
# p(label) no longer decides alone (Instacart uniform 0.645 -> 0.651); the brand score meets it on the scale
# of one column.
POOLED_SCORE = ("pooled:self", "classifier:self")
# A brand line scores on its own scale: a (brand, label) group's mean brand-out log-margin is often
# positive for clean brands (the taxonomy is ambiguous), so it must clear the raw score's log-odds by this
# much. Chosen for POOLED_SCORE on the three branded catalog shapes (BigBasket with descriptions, cut to two
# levels, of mixed depth; a brand on every product, ~1,500 brands a 6,000-product sample; seed 0) from 0-4 by
# the best worst case over cleanlab across their cells, then the best mean (docs/audit.md; `bench/studies/
# audit_signals.py offsets`): 4 (+0.063, two levels' uniform moves) by 0.001 over 3; left out one at a time, the
# other two choose 4, 3 and 4. Brand lines moved whole: 0.256 and 0.189 AP (cleanlab 0.181, 0.082).
BRAND_OFFSET = 4.0


def pooled(probs: dict, weights: dict, chunk: int = 8192, device: str = "cpu") -> np.ndarray:
    """Log-linear pool: q ∝ Π_s p_s ** w_s, (N, K); `chunk` rows at a time on ``device`` (``pool_rows``)."""
    n, k = next(iter(probs.values())).shape
    out = np.empty((n, k), np.float32)
    for start in range(0, n, chunk):
        part = {s: torch.as_tensor(probs[s][start:start + chunk], device=device) for s in weights}
        out[start:start + chunk] = pool_rows(part, weights).cpu().numpy()
    return out


def pool_rows(probs: dict, weights: dict) -> torch.Tensor:
    """``pooled`` of rows held as tensors (R, K) on one device."""
    logq = sum(w * torch.log(probs[s] + EPS) for s, w in weights.items())
    q = torch.exp(logq - logq.amax(1, keepdim=True))
    return q / q.sum(1, keepdim=True)


def fit_pool_weights(probs: dict, labels: np.ndarray, steps=50, device: str = "cpu") -> dict:
    """Weights that best predict the given labels from the leave-self-out distributions (fitted on ``device``)."""
    names = [s for s in probs if s in POOL_SIGNALS]
    keep = np.flatnonzero(labels >= 0)
    device = torch.device(device)
    logp = torch.stack([torch.as_tensor(np.log(probs[s][keep] + EPS), device=device) for s in names])  # (S, n, K)
    y = torch.as_tensor(labels[keep], device=device)
    w = torch.ones(len(names), dtype=logp.dtype, device=device, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(torch.einsum("s,snk->nk", w, logp), y)
        loss.backward()
        return loss

    opt.step(closure)
    return {s: float(v) for s, v in zip(names, w.detach().clamp(min=0.0))}


def best_other(probs: np.ndarray, labels: np.ndarray, k: int = 1) -> np.ndarray:
    """(N,) (or (N, k) for k > 1) most probable classes other than each row's label (-1: none)."""
    masked = np.array(probs, dtype=np.result_type(probs, np.float32), copy=True)  # exact copy
    rows = np.flatnonzero(labels >= 0)
    masked[rows, labels[rows]] = -np.inf
    if k == 1:
        return masked.argmax(1)  # the first of tied maxima, like the stable sort below
    return np.argsort(-masked, axis=1, kind="stable")[:, :k]


def suspicion_features(probs: dict, q: np.ndarray, labels, parent_of, device: str = "cpu"
                       ) -> tuple[np.ndarray, list[str]]:
    """Per product (the rows of ``probs`` and ``q``), a handful of "suspicion" features, each oriented so
    that larger means more likely wrong: pooled -log p(label), pooled -log p(label's parent), pooled
    log-margin of the best other leaf over the label, and each signal's -log p(label) and log-margin.
    Column 0 is pooled -log p(label). ``brand_group_score`` adds one column for the whole catalog.
    Computed on ``device`` (``suspicion_rows``)."""
    names = suspicion_names(probs)
    tensors = {name: torch.as_tensor(p, device=device) for name, p in probs.items()}
    labels = torch.as_tensor(np.asarray(labels), device=device)
    features = suspicion_rows(tensors, torch.as_tensor(q, device=device), labels, parent_matrix(parent_of, device))
    return features.cpu().numpy(), names


def suspicion_names(signals) -> list[str]:
    """The columns of ``suspicion_features`` for these signals, in order."""
    return ["pooled:self", "pooled:parent", "pooled:margin"] + [
        f"{name}:{kind}" for name in signals for kind in ("self", "margin")]


def parent_matrix(parent_of: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """(K, P) float32 one-hot of each leaf's parent group (``suspicion_rows``' ``to_parent``)."""
    to_parent = torch.zeros((len(parent_of), int(parent_of.max()) + 1), dtype=torch.float32, device=device)
    to_parent[torch.arange(len(parent_of), device=device), torch.as_tensor(parent_of, device=device)] = 1.0
    return to_parent


def suspicion_rows(probs: dict, q: torch.Tensor, labels: torch.Tensor, to_parent: torch.Tensor) -> torch.Tensor:
    """``suspicion_features`` of rows held as tensors on one device: (R, F) float64, in its columns' order."""
    rows = torch.arange(len(labels), device=q.device)
    lab = labels.clamp(min=0)

    def own_and_margin(p):
        own = p[rows, lab]
        other = p.clone()
        other[rows, lab] = 0.0
        return -torch.log(own + EPS), torch.log(other.amax(1) + EPS) - torch.log(own + EPS)

    q_self, q_margin = own_and_margin(q)
    parent = (q @ to_parent)[rows, to_parent.argmax(1)[lab]]  # q summed over the label's parent's leaves
    cols = [q_self, -torch.log(parent + EPS), q_margin]
    for p in probs.values():
        cols += own_and_margin(p)
    return torch.stack(cols, dim=1).to(torch.float64)


def brand_group_score(brand_out_margin: np.ndarray, labels: np.ndarray, brands) -> np.ndarray:
    """(N,) ``brand_out:group``: the ``brand_out`` log-margin averaged over each product's (brand, label)
    group; -inf for a group of one (one product is no brand line)."""
    group = brand_groups(labels, brands)
    size = np.bincount(group)[group]
    mean = np.bincount(group, weights=brand_out_margin)[group] / size
    return np.where(size >= 2, mean, -np.inf)


@dataclass
class Combiner:
    """How the signals are pooled (suggestion) and turned into a raw score. JSON-able."""

    signals: tuple
    weights: dict  # pool weight of each of POOL_SIGNALS
    feature_names: list  # the columns of ``suspicion_features``
    brand_offset: float = BRAND_OFFSET
    score: tuple = POOLED_SCORE  # the feature columns the raw score sums
    classifier_weight_decay: float | None = None  # the classifiers' L2 weight, chosen on the catalog

    def _margins(self, features: np.ndarray) -> np.ndarray:
        """-log(mean of exp(-column)) over ``score``'s columns: with -log(p + EPS) columns, the surprise at the
        signals' mean probability of the label (the order bench/studies/audit_signals.py's "mean p" gives; one
        column is itself)."""
        cols = [self.feature_names.index(f) for f in self.score if f in self.feature_names]
        return -np.log(np.exp(-features[:, cols]).mean(1))

    def _brand_score(self, features: np.ndarray) -> np.ndarray:
        return features[:, self.feature_names.index("brand_out:group")] - self.brand_offset

    def log_odds(self, features: np.ndarray) -> np.ndarray:
        """-log of the score's mean probability of the label, or the brand score less ``brand_offset``
        where larger."""
        m = self._margins(features)
        if "brand_out:group" in self.feature_names:
            m = np.maximum(m, self._brand_score(features))
        return m

    def brand_led(self, features: np.ndarray) -> np.ndarray:
        """(N,) bool: the brand score decided the raw score and calls the label wrong (log-odds above
        0), so the suggestion should come from ``brand_out``."""
        if "brand_out:group" not in self.feature_names:
            return np.zeros(len(features), dtype=bool)
        return self._brand_score(features) > np.maximum(self._margins(features), 0.0)

    def raw_score(self, features: np.ndarray) -> np.ndarray:
        """Logistic of ``log_odds``: how surprising the given label is (in [0.5, 1) for the default's
        -log p(label) columns; calibration.py maps it to a probability)."""
        return 1.0 / (1.0 + np.exp(-self.log_odds(features)))

    def to_dict(self) -> dict:
        keys = ("weights", "feature_names", "brand_offset", "classifier_weight_decay")
        return {k: getattr(self, k) for k in keys} | {"signals": list(self.signals), "score": list(self.score)}

    @classmethod
    def from_dict(cls, d: dict) -> "Combiner":
        return cls(**{**d, "signals": tuple(d["signals"]), "score": tuple(d.get("score", POOLED_SCORE))})
