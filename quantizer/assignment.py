"""Cold start: codes for new or changed products from each flavor's active run, without retraining
(`assign_products`), and the code the active run would give a product that is not in the catalog
(`code_for_record`). The assignment rules themselves are in quantizer.core.assignment (`encode`); this
module feeds them what the run's other products hold: their full codes (`held_codes`), the level-1 codes of
their near-duplicates (`near_duplicate_hints`) and the codes of identical texts (`twin_codes`)."""

from __future__ import annotations

import numpy as np
from django.db.models import Q

from catalog.embeddings import embed_products, neighbours_of_vectors, product_vectors
from catalog.encoder import default_device, encode_texts, load_encoder
from catalog.models import ProductEmbedding
from catalog.text import product_text, text_hash
from quantizer.core import code_string, encode
from quantizer.core.neighbours import NEAR_DUPLICATE_K
from quantizer.inputs import coding_input
from quantizer.models import QuantizerRun, SemanticId
from quantizer.services import active_run, run_model, write_codes


def assign_products(*, product_ids: list[int], flavors=None) -> int:
    """Code new or changed products with each flavor's active run, without retraining (cold start).

    The last level keeps off full codes other products hold (`held_codes`); a product whose text an
    already-coded product of the run has (same embedding) takes that product's code, as it would
    have in training. A run that reads an extra input reads each product's row as it trained on it, zero for a
    product it did not train on (`coding_input`)."""
    assigned = 0
    for flavor in flavors or [r.flavor for r in QuantizerRun.objects.filter(is_active=True)]:
        run = active_run(flavor, required=False)
        if run is None or not run.has_weights:
            continue
        embed_products(flavor=flavor, product_ids=product_ids)
        ids, vectors = product_vectors(flavor=flavor, product_ids=product_ids)
        if not len(ids):
            continue
        model, recoded = run_model(run), ids.tolist()
        vectors_in = coding_input(run, model, vectors, product_ids=ids)
        hashes = dict(ProductEmbedding.objects.filter(flavor=flavor, product_id__in=recoded)
                      .values_list("product_id", "text_hash"))
        twins = twin_codes(run, hashes, exclude_product_ids=recoded)
        hints = near_duplicate_hints(run, vectors, exclude_product_ids=recoded)
        occupied = held_codes(run, exclude_product_ids=recoded)
        encoded = encode(model, vectors_in, device=default_device(), first_code_hints=hints, occupied=occupied)
        codes = encoded.codes
        if twins:
            is_twin = np.array([pk in twins for pk in recoded])
            codes = codes.copy()
            codes[is_twin] = [twins[pk] for pk in recoded if pk in twins]
            if not is_twin.all():  # the others again, without the twins contesting codes they do not keep
                codes[~is_twin] = encode(model, vectors_in[~is_twin], device=default_device(), occupied=occupied,
                                         first_code_hints=None if hints is None else hints[~is_twin]).codes
        write_codes(run=run, product_ids=ids, codes=codes, errors=encoded.reconstruction_error, gaps=encoded.gaps)
        assigned += len(ids)
    return assigned


def twin_codes(run: QuantizerRun, hashes: dict, *, exclude_product_ids=(), chunk: int = 5000) -> dict:
    """{key: codes} for the keys of `hashes` ({key: embedded text hash}) whose text a product already
    coded by `run` (outside `exclude_product_ids`) has too: identical embeddings share their code."""
    excluded, wanted, held = set(exclude_product_ids), sorted(set(hashes.values())), {}
    for i in range(0, len(wanted), chunk):
        rows = (SemanticId.objects.filter(run=run, product__embeddings__flavor=run.flavor,
                                          product__embeddings__text_hash__in=wanted[i : i + chunk])
                .order_by("product_id").values_list("product_id", "product__embeddings__text_hash", "codes"))
        for pk, text, codes in rows:
            if pk not in excluded:
                held.setdefault(text, codes)
    return {key: held[h] for key, h in hashes.items() if h in held}


def near_duplicate_hints(run: QuantizerRun, vectors: np.ndarray, *, exclude_product_ids=()) -> np.ndarray | None:
    """For `encode(first_code_hints=...)`: per vector, the level-1 code most of its near-duplicates
    already coded by `run` hold (cosine >= the run's near_duplicate_threshold among its
    NEAR_DUPLICATE_K nearest, by pgvector), -1 where it has none; None when the run does not group."""
    threshold, k = float((run.config or {}).get("near_duplicate_threshold") or 0.0), NEAR_DUPLICATE_K
    if threshold <= 0:
        return None
    close = [[pk for pk, sim in found if sim >= threshold]
             for found in neighbours_of_vectors(vectors=vectors, flavor=run.flavor, k=k,
                                                exclude_product_ids=exclude_product_ids)]
    first_of = dict(SemanticId.objects.filter(run=run, product_id__in={pk for pks in close for pk in pks})
                    .values_list("product_id", "codes__0"))
    hints = np.full(len(vectors), -1, np.int64)
    for i, pks in enumerate(close):
        firsts = [first_of[pk] for pk in pks if pk in first_of]
        if firsts:
            hints[i] = int(np.bincount(firsts).argmax())
    return hints


def held_codes(run: QuantizerRun, *, exclude_product_ids=(), chunk: int = 200):
    """For `encode(occupied=...)`: prefixes -> the full codes the run's products hold under them
    (products in `exclude_product_ids` are being re-coded and hold nothing)."""
    excluded = set(exclude_product_ids)

    def lookup(prefixes) -> set[tuple[int, ...]]:
        starts = sorted({code_string(p) + "_" for p in prefixes.tolist()})
        held: set[tuple[int, ...]] = set()
        for i in range(0, len(starts), chunk):
            where = Q()
            for start in starts[i : i + chunk]:
                where |= Q(code__startswith=start)
            for pk, codes in SemanticId.objects.filter(where, run=run).values_list("product_id", "codes"):
                if pk not in excluded:
                    held.add(tuple(codes))
        return held

    return lookup


def code_for_record(*, record: dict, flavor: str) -> dict:
    """The code the active run gives a product that is not in the catalog (nothing is written)."""
    run = active_run(flavor)
    if not run.has_weights:
        raise ValueError(f"run #{run.pk} ({run.kind}) has no learned weights; cold start needs an RQ-VAE run")
    text = product_text(record, flavor)
    vector, model = encode_texts(load_encoder(run.embedding_model), [text]), run_model(run)
    encoded = encode(model, coding_input(run, model, vector), device=default_device(),
                     occupied=held_codes(run), first_code_hints=near_duplicate_hints(run, vector))
    twin = twin_codes(run, {0: text_hash(text, run.embedding_model)}).get(0)
    codes = list(twin) if twin is not None else encoded.codes[0].tolist()
    return {
        "run": run.pk,
        "flavor": flavor,
        "text": text,
        "codes": codes,
        "semantic_id": code_string(codes),
        "reconstruction_error": float(encoded.reconstruction_error[0]),
        "gaps": [float(g) for g in encoded.gaps[0]],
    }
