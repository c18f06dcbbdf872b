"""What a run reads beside the text embedding: its `extra_input`, by name.

An app registers an extra input in its `AppConfig.ready()` (`register_extra_input`): a name and a function
`fn(*, product_ids) -> (N, d) float32` of rows, one per product in that order. The baskets app registers
"copurchase": each product's place among the imported orders (`baskets.services.copurchase_rows`).

A run that reads one trains on `[text embedding, extra rows] / sqrt(2)`, the two halves weighed alike
(`training_input`); its model's input is that wide. Products coded after training (a new or changed product,
a record outside the catalog) read a zero extra half (`coding_input`): what the input says of a product it
knows nothing about, as of the run's training. The next run reads the input afresh.
"""

from __future__ import annotations

import numpy as np
from django.utils.module_loading import import_string

from quantizer.core.inputs import side_by_side

EXTRA_INPUTS: dict[str, str] = {}  # name -> dotted path of fn(*, product_ids) -> (N, d) float32


def register_extra_input(name: str, function: str) -> None:
    EXTRA_INPUTS[name] = function


def check_extra_input(name: str) -> str:
    """`name` when it is "" (text only) or registered; else a ValueError naming the known ones."""
    if name and name not in EXTRA_INPUTS:
        known = ", ".join(sorted(EXTRA_INPUTS)) or "none"
        raise ValueError(f"unknown extra input {name!r}; known: {known}")
    return name


def training_input(run, product_ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The (N, D) vectors a run trains on: the text embeddings, with the run's extra input beside them."""
    if not run.extra_input:
        return vectors
    rows = import_string(EXTRA_INPUTS[check_extra_input(run.extra_input)])(product_ids=product_ids)
    return side_by_side(vectors, np.asarray(rows, dtype=np.float32))


def coding_input(run, model, vectors: np.ndarray) -> np.ndarray:
    """The vectors products coded after training give the run's `model`: text embeddings, with a zero extra
    half as wide as the model's input leaves when the run reads one."""
    width = model.config.model.input_dim - vectors.shape[1]
    if not run.extra_input or width <= 0:
        return vectors
    return side_by_side(vectors, np.zeros((len(vectors), width), np.float32))
