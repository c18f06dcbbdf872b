"""Turning raw scores into a calibrated P(label is wrong).

Isotonic regression of "was this label moved on purpose" on the raw score, fitted on a copy of the
catalog with known injected wrong labels. The catalog's own, unknown mistakes sit among the "not
injected" products of that copy and would pull the curve down (a score that is certainly wrong would
read ~0.5 when as many real mistakes as injected ones score there). So the products the catalog's own
audit suspects most, as many as the copy moves, are left out of the fit unless the copy moved them
(``suspects``): what remains "not injected" is mostly right. On six 6,000-product catalogs this kept ECE
under 0.05 where dividing the curve by the share of injected labels among the copy's top-scored (Elkan &
Noto, 2008; ``correct_for_unknown_errors``, the calibrator before 2026-12-01) reached 0.076 on names-only
Instacart, and where the plain curve raised no flag at all there (docs/audit.md).

The confidence keeps the raw score's ranking (the queue is ordered by it): the curve runs through
the centres of the isotonic steps, linear in between, and ``RANK_WEIGHT`` of the raw score is
blended in, so two products with different raw scores never share a confidence (where the curve
is flat, below the first step's centre, above the last, or at the 1.0 cap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression

from audit.core.combine import Combiner
from audit.core.noise import inject_mixture
from audit.core.scoring import Scores, ScoringConfig, score_products


# Share of the raw score in the confidence: makes it strictly increasing; moves it by at most this.
RANK_WEIGHT = 1e-3
# Share of the calibration copy's labels moved on purpose.
CALIBRATION_RATE = 0.03


@dataclass
class Calibrator:
    x: list  # raw-score thresholds, increasing
    y: list  # calibrated P(wrong) at each threshold, non-decreasing, in [0, 1]
    injected_share: float = 1.0  # c: share of wrong labels among the top-scored that were injected

    def predict(self, raw) -> np.ndarray:
        """P(label is wrong), strictly increasing in ``raw`` over [0, 1]."""
        raw = np.asarray(raw, dtype=np.float64)
        curve = np.clip(np.interp(raw, self.x, self.y), 0.0, 1.0)
        return np.clip((1.0 - RANK_WEIGHT) * curve + RANK_WEIGHT * raw, 0.0, 1.0)

    def to_dict(self) -> dict:
        return {"method": "isotonic", "x": list(self.x), "y": list(self.y), "injected_share": self.injected_share}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibrator":
        return cls(x=list(d["x"]), y=list(d["y"]), injected_share=float(d.get("injected_share", 1.0)))


def _step_centres(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One point per isotonic step (x: the middle of the step's thresholds), so the interpolated
    curve rises between steps instead of staying flat along each."""
    starts = np.flatnonzero(np.r_[True, y[1:] != y[:-1]])
    ends = np.r_[starts[1:], len(y)] - 1
    return (x[starts] + x[ends]) / 2.0, y[starts]


def catalog_suspects(raw, labels, n: int) -> np.ndarray:
    """(N,) bool: the ``n`` labelled products with the highest raw scores (the catalog's own suspects)."""
    raw = np.where(np.asarray(labels) >= 0, np.asarray(raw, dtype=np.float64), -np.inf)
    out = np.zeros(len(raw), dtype=bool)
    out[np.argsort(-raw, kind="stable")[:n]] = True
    return out & np.isfinite(raw)


def fit_calibrator(raw, injected, *, suspects=None, correct_for_unknown_errors: bool = False) -> Calibrator:
    """Isotonic raw -> P(injected) over the copy's products, those in ``suspects`` left out unless injected;
    with ``correct_for_unknown_errors``, divided by the estimated share of injected among wrong labels."""
    raw = np.asarray(raw, dtype=np.float64)
    injected = np.asarray(injected, dtype=bool)
    if suspects is not None:
        keep = ~np.asarray(suspects, dtype=bool) | injected
        raw, injected = raw[keep], injected[keep]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, injected.astype(float))
    x, y = _step_centres(np.asarray(iso.X_thresholds_, dtype=np.float64),
                         np.asarray(iso.y_thresholds_, dtype=np.float64))
    share = 1.0
    n_injected = int(injected.sum())
    if correct_for_unknown_errors and n_injected >= 10:
        top = np.argsort(-raw, kind="stable")[: max(n_injected // 2, 5)]
        share = float(np.clip(injected[top].mean(), 0.05, 1.0))
        y = np.minimum(y / share, 1.0)
    if len(x) == 1:  # a constant fit: make interp well defined
        x, y = np.array([0.0, 1.0]), np.array([y[0], y[0]])
    return Calibrator(x=x.tolist(), y=y.tolist(), injected_share=share)


def copy_taxonomy(taxonomy, *, rate: float, seed: int, embeddings) -> tuple[np.ndarray, np.ndarray]:
    """The calibration copy's labels: ``taxonomy`` with ``rate`` of its labels moved on purpose (uniform, sibling and
    look-alike moves) for ``seed``, and the (N,) moved-on-purpose indicator."""
    return inject_mixture(taxonomy, rate=rate, seed=seed + 202, embeddings=embeddings)


def score_copy(
    *, combiner: Combiner, embeddings, taxonomy, codes, rate: float = CALIBRATION_RATE, seed: int = 1, brands=None, texts=None,
    device: str = "cpu", config: ScoringConfig = ScoringConfig(), reuse: Scores | None = None,
    fold_models: dict | None = None,
) -> tuple[Scores, np.ndarray]:
    """A held-out copy of the catalog (``copy_taxonomy``), scored with ``combiner``; ``reuse``: the catalog's Scores,
    whose text features and labelled neighbours the copy shares (``score_products``); ``fold_models``: its
    classifiers' folds where fitted already. Returns the copy's Scores and the (N,) moved-on-purpose indicator."""
    noisy, injected = copy_taxonomy(taxonomy, rate=rate, seed=seed, embeddings=embeddings)
    copy = score_products(
        embeddings=embeddings, taxonomy=noisy, codes=codes, combiner=combiner, seed=seed, device=device,
        config=config, brands=brands, texts=texts, reuse=reuse, fold_models=fold_models,
    )
    return copy, injected


def calibrate(
    *,
    embeddings,
    taxonomy,
    codes,
    combiner: Combiner,
    rate: float = CALIBRATION_RATE,
    seed: int = 1,
    brands=None,
    texts=None,
    device: str = "cpu",
    config: ScoringConfig = ScoringConfig(),
    correct_for_unknown_errors: bool = False,
    reuse: Scores | None = None,
    fold_models: dict | None = None,
) -> Calibrator:
    """Inject ``rate`` known wrong labels into a copy (uniform, sibling and look-alike moves), score
    the copy with the same ``combiner``, fit raw -> P(wrong). ``reuse``: the catalog's Scores, whose text
    features and neighbours the copy shares and whose most suspected products leave the fit
    (``catalog_suspects``, as many as the copy moves).

    Use a ``seed`` other than the one the combiner was fitted with, so the copy is a held-out one. ``fold_models``:
    the copy's classifier folds where fitted already (``score_products``).
    """
    copy, injected = score_copy(combiner=combiner, embeddings=embeddings, taxonomy=taxonomy, codes=codes, rate=rate,
                                seed=seed, brands=brands, texts=texts, device=device, config=config, reuse=reuse,
                                fold_models=fold_models)
    labelled = copy.labels >= 0
    suspects = None
    if reuse is not None:
        suspects = catalog_suspects(reuse.raw_score, reuse.labels, int(injected[labelled].sum()))[labelled]
    return fit_calibrator(copy.raw_score[labelled], injected[labelled], suspects=suspects,
                          correct_for_unknown_errors=correct_for_unknown_errors)


def expected_calibration_error(prob, outcome, n_bins: int = 10) -> float:
    """Count-weighted mean |mean(prob) - mean(outcome)| over equal-width probability bins."""
    prob = np.asarray(prob, dtype=np.float64)
    outcome = np.asarray(outcome, dtype=np.float64)
    bins = np.minimum((prob * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.sum() * abs(prob[m].mean() - outcome[m].mean())
    return float(total / max(len(prob), 1))
