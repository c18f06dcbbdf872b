"""What a run reads beside the text embedding: its `extra_input`, by name.

An app registers an extra input in its `AppConfig.ready()` (`register_extra_input`): a name, a function
`fn(*, product_ids) -> (N, d) float32` of rows, one per product in that order, and the rows' weight beside the
text. The baskets app registers "copurchase": each product's place among the imported orders
(`baskets.services.copurchase_rows`), weighed `baskets.core.copurchase.COPURCHASE_WEIGHT`.

A run that reads one trains on `[text embedding, w · extra rows] / sqrt(1 + w²)` (`training_input`; w the
input's weight when the run was created, kept as `extra_input_weight`); its model's input is that wide, and the
run keeps each product's non-zero row as it trained on it (`RunInputRow`). Products coded after training read the
same half (`coding_input`): a product the run trained on (its text changed since) its kept row, a new product or a
record outside the catalog a zero row, what the input said of a product it knew nothing about. The input is not
computed afresh for them: a new computation (an SVD of other orders) sits in another basis than the model learned.
The next run reads it afresh.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from django.utils.module_loading import import_string

from quantizer.core.inputs import side_by_side
from quantizer.models import RunInputRow

ROWS_WRITE_BATCH = 5000


class ExtraInput(NamedTuple):
    function: str  # dotted path of fn(*, product_ids) -> (N, d) float32
    weight: float  # the rows' weight beside the text (side_by_side)


EXTRA_INPUTS: dict[str, ExtraInput] = {}


def register_extra_input(name: str, function: str, weight: float = 1.0) -> None:
    EXTRA_INPUTS[name] = ExtraInput(function, weight)


def extra_input_weight(name: str) -> float:
    """The weight a new run reading `name` trains with (1 for the text alone)."""
    return EXTRA_INPUTS[check_extra_input(name)].weight if name else 1.0


def check_extra_input(name: str) -> str:
    """`name` when it is "" (text only) or registered; else a ValueError naming the known ones."""
    if name and name not in EXTRA_INPUTS:
        known = ", ".join(sorted(EXTRA_INPUTS)) or "none"
        raise ValueError(f"unknown extra input {name!r}; known: {known}")
    return name


def training_input(run, product_ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The (N, D) vectors a run trains on: the text embeddings, with the run's extra input beside them; the
    extra rows are kept with the run (`RunInputRow`, non-zero rows only, replacing any it had)."""
    if not run.extra_input:
        return vectors
    rows = import_string(EXTRA_INPUTS[check_extra_input(run.extra_input)].function)(product_ids=product_ids)
    rows = np.asarray(rows, dtype=np.float32)
    RunInputRow.objects.filter(run=run).delete()
    kept = np.flatnonzero(np.abs(rows).sum(axis=1) > 0)
    RunInputRow.objects.bulk_create(
        [RunInputRow(run=run, product_id=int(product_ids[i]), row=rows[i].tobytes()) for i in kept],
        batch_size=ROWS_WRITE_BATCH)
    return side_by_side(vectors, rows, run.extra_input_weight)


def coding_input(run, model, vectors: np.ndarray, product_ids=None) -> np.ndarray:
    """The vectors products coded after training give the run's `model`: text embeddings, with the extra half
    as the run trained on it where the run reads one: each product's kept row (`product_ids`, in the order of
    `vectors`), zero for a product the run has no row of or a record outside the catalog (`product_ids` None)."""
    width = model.config.model.input_dim - vectors.shape[1]
    if not run.extra_input or width <= 0:
        return vectors
    rows = np.zeros((len(vectors), width), np.float32)
    if product_ids is not None:
        place = {int(pk): i for i, pk in enumerate(product_ids)}
        for pk, row in RunInputRow.objects.filter(run=run, product_id__in=list(place)).values_list("product_id", "row"):
            rows[place[pk]] = np.frombuffer(bytes(row), dtype=np.float32)
    return side_by_side(vectors, rows, run.extra_input_weight)
