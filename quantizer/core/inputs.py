"""A run's input when it reads something beside the text embedding (quantizer.inputs names and fetches it)."""

from __future__ import annotations

import numpy as np


def side_by_side(vectors: np.ndarray, rows: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """(N, D + d) float32 [vectors, weight · rows] / sqrt(1 + weight²): unit text vectors and unit (or zero)
    extra rows, unit length where both are; weight 1 (the default) weighs the two halves alike."""
    return (np.hstack([vectors, weight * rows]) / np.sqrt(1 + weight**2)).astype(np.float32)
