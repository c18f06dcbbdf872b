"""Mislabel scoring core: arrays in, arrays out; no Django, no database."""

from audit.core.calibration import Calibrator, calibrate, expected_calibration_error, fit_calibrator
from audit.core.noise import REGIMES, inject_noise, leaf_classes
from audit.core.scoring import (
    SIGNALS,
    Combiner,
    Scores,
    SignalParams,
    cluster_evidence,
    product_words,
    score_products,
    taxonomy_issues,
)

__all__ = [
    "REGIMES", "SIGNALS", "Calibrator", "Combiner", "Scores", "SignalParams", "calibrate",
    "cluster_evidence", "expected_calibration_error", "fit_calibrator", "inject_noise",
    "leaf_classes", "product_words", "score_products", "taxonomy_issues",
]
