"""A run's input when it reads something beside the text embedding (quantizer.inputs names and fetches it)."""

from __future__ import annotations

import numpy as np


def side_by_side(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(N, D + d) float32 [vectors, rows] / sqrt(2): unit text vectors and unit (or zero) extra rows, the two
    halves weighed alike."""
    return (np.hstack([vectors, rows]) / np.sqrt(2)).astype(np.float32)
