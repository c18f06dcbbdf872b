"""Mislabel scoring core: arrays in, arrays out; no Django, no database.

``signals`` (per-product distributions over leaves), ``combine`` (pool, raw score), ``scoring``
(``score_products``, ``Scores``), ``evidence`` (what a flag shows, taxonomy issues), ``calibration``
(raw score -> P(wrong)), ``noise`` (labels moved on purpose).
"""

from audit.core.calibration import Calibrator, calibrate, expected_calibration_error, fit_calibrator
from audit.core.combine import Combiner
from audit.core.evidence import CodePrefixes, cluster_evidence, taxonomy_issues
from audit.core.noise import REGIMES, inject_noise, leaf_classes
from audit.core.scoring import Scores, ScoringConfig, score_products
from audit.core.signals import SIGNALS, product_words, text_terms

__all__ = [
    "REGIMES", "SIGNALS", "Calibrator", "Combiner", "Scores", "ScoringConfig", "calibrate",
    "CodePrefixes", "cluster_evidence", "expected_calibration_error", "fit_calibrator", "inject_noise",
    "leaf_classes", "product_words", "score_products", "taxonomy_issues", "text_terms",
]
