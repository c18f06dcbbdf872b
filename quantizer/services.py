"""Training runs, code assignment, activation and cold start. The maths is in quantizer.core."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import torch
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog.embeddings import embed_products, model_name, neighbours_of_vectors, product_vectors
from catalog.encoder import default_device, encode_texts, load_encoder
from catalog.models import Category, Product, ProductEmbedding
from catalog.text import product_text, text_hash
from quantizer.clusters import fill_words
from quantizer.core import (
    RQVAE,
    RQVAEConfig,
    code_string,
    disambiguate,
    encode,
    intrinsic_metrics,
    load_model,
    residual_kmeans,
    save_model,
    train_rqvae,
)
from quantizer.core.metrics import collision_rates
from quantizer.core.neighbours import NEAR_DUPLICATE_K
from quantizer.models import QuantizerRun, SemanticId

WRITE_BATCH = 5000


class NoActiveRun(Exception):
    def __init__(self, flavor: str):
        super().__init__(
            f'no active run for flavor "{flavor}": train one with python manage.py pipeline --flavor {flavor}'
        )


def taxonomy_array(product_ids: np.ndarray) -> np.ndarray:
    """(N, T) ids of each product's depth-(t+1) category (the ancestor's pk), -1 where absent."""
    rows = dict(Product.objects.filter(pk__in=product_ids.tolist()).values_list("pk", "category_id"))
    ancestors = _ancestor_ids()
    depth = max((len(a) for a in ancestors.values()), default=1)
    out = np.full((len(product_ids), depth), -1, dtype=np.int64)
    for i, pk in enumerate(product_ids.tolist()):
        chain = ancestors.get(rows.get(pk), ())
        out[i, : len(chain)] = chain
    return out


def _ancestor_ids() -> dict[int, tuple[int, ...]]:
    parents = dict(Category.objects.values_list("pk", "parent_id"))
    chains: dict[int, tuple[int, ...]] = {}

    def chain(pk):
        if pk not in chains:
            parent = parents[pk]
            chains[pk] = (chain(parent) if parent else ()) + (pk,)
        return chains[pk]

    for pk in parents:
        chain(pk)
    return chains


def default_config(*, input_dim: int, seed: int, overrides: dict | None = None) -> RQVAEConfig:
    values = {"input_dim": input_dim, "seed": seed}
    if settings.SEMID_QUANTIZER_OVERRIDES:
        values.update(json.loads(settings.SEMID_QUANTIZER_OVERRIDES))
    values.update(overrides or {})
    return RQVAEConfig.from_dict({**RQVAEConfig().to_dict(), **values})


def create_run(*, flavor: str, kind: str = QuantizerRun.Kind.RQVAE, seed: int = 0, overrides: dict | None = None,
               user=None) -> QuantizerRun:
    return QuantizerRun.objects.create(
        flavor=flavor, kind=kind, seed=seed, embedding_model=model_name(), created_by=user,
        config=overrides or {},
    )


def _set(run: QuantizerRun, **fields) -> None:
    QuantizerRun.objects.filter(pk=run.pk).update(**fields)
    for key, value in fields.items():
        setattr(run, key, value)


def train_run(*, run: QuantizerRun, progress=None, activate: bool = True) -> QuantizerRun:
    """Train (or fit) the run's quantizer on the stored embeddings, assign codes, evaluate, activate."""
    torch.manual_seed(run.seed)
    _set(run, status=QuantizerRun.Status.RUNNING, message="loading embeddings", progress=0.0)
    try:
        ids, vectors = product_vectors(flavor=run.flavor)
        if len(ids) < 2:
            raise ValueError(f"only {len(ids)} {run.flavor} embeddings: import products and embed them first")
        taxonomy = taxonomy_array(ids)
        config = default_config(input_dim=vectors.shape[1], seed=run.seed, overrides=run.config)
        active = active_run(run.flavor, required=False)
        started = time.perf_counter()
        weights = None
        if run.kind == QuantizerRun.Kind.RESIDUAL_KMEANS:
            codes = residual_kmeans(vectors, config.model.codebook_sizes, seed=run.seed, device=default_device(),
                                    spread=config.assignment.spread_last_level,
                                    near_duplicate_threshold=config.assignment.near_duplicate_threshold,
                                    near_duplicate_max_group=config.assignment.near_duplicate_max_group)
            errors = np.zeros(len(ids), np.float32)
            gaps = np.zeros(codes.shape, np.float32)
            nearest = None
            history, train_products = [], len(ids)
        else:
            init_state = None
            if active is not None and active.kind == run.kind and active.has_weights:
                init_state = _compatible_state(active.weights, config)
                if init_state is not None:
                    _set(run, warm_start_from=active)

            def on_epoch(epoch, total, losses):
                _set(run, progress=0.85 * epoch / total, message=f"epoch {epoch}/{total}",
                     history=[*run.history, {"epoch": epoch, **losses}])
                if progress:
                    progress(0.85 * epoch / total, 1.0, f"epoch {epoch}/{total}")

            result = train_rqvae(vectors, taxonomy, config, device=default_device(), progress=on_epoch,
                                 init_state=init_state)
            weights = save_model(result.model, config)
            train_products = result.train_products
            encoded = encode(result.model, vectors, device=default_device())
            codes, errors, gaps = encoded.codes, encoded.reconstruction_error, encoded.gaps
            nearest = encoded.nearest_codes
        seconds = time.perf_counter() - started
        if weights is not None:
            run.store_weights(weights)
        _set(run, message="assigning codes", progress=0.88, config=config.to_dict(), train_seconds=seconds,
             n_products=len(ids))
        write_codes(run=run, product_ids=ids, codes=codes, errors=errors, gaps=gaps)
        _set(run, message="evaluating", progress=0.94)
        metrics = intrinsic_metrics(vectors, codes, taxonomy, seed=run.seed, codebook_sizes=config.model.codebook_sizes,
                                    reconstruction_error=errors)
        metrics["train_products"] = train_products
        if nearest is not None:  # what the collision-aware last level saved
            metrics["collision_rate_nearest"] = collision_rates(vectors, nearest)[0]
        churn = code_churn(old=active, new=run) if active else {}
        _set(run, metrics=metrics, churn=churn, status=QuantizerRun.Status.SUCCEEDED, progress=1.0,
             message="done", finished_at=timezone.now())
    except Exception as exc:
        _set(run, status=QuantizerRun.Status.FAILED, message=f"{type(exc).__name__}: {exc}"[:500],
             finished_at=timezone.now())
        raise
    if activate:
        activate_run(run)
    return run


def _compatible_state(weights: bytes, config: RQVAEConfig) -> dict | None:
    """The previous run's weights, when they fit the new run's architecture (warm start); else None."""
    previous, _ = load_model(weights)
    state, fresh = previous.state_dict(), RQVAE(config).state_dict()
    if state.keys() != fresh.keys() or any(state[k].shape != fresh[k].shape for k in state):
        return None
    return state


def write_codes(*, run: QuantizerRun, product_ids: np.ndarray, codes: np.ndarray, errors: np.ndarray,
                gaps: np.ndarray) -> None:
    """Upsert the run's SemanticIds; existing products keep their disambiguation token. The run's cluster
    summaries follow (quantizer.clusters)."""
    order = np.argsort(product_ids, kind="stable")
    product_ids, codes, errors, gaps = product_ids[order], codes[order], errors[order], gaps[order]
    strings = [code_string(row) for row in codes.tolist()]
    held, held_codes = {}, {}
    for pk, code, token in SemanticId.objects.filter(run=run).values_list("product_id", "code", "token"):
        held[pk], held_codes[pk] = token, code
    position = {pk: i for i, pk in enumerate(product_ids.tolist())}
    # Codes of products outside this batch still occupy their tokens.
    others = [(pk, held_codes[pk], tok) for pk, tok in held.items() if pk not in position]
    keys = strings + [c for _, c, _ in others]
    existing = {position[pk]: tok for pk, tok in held.items() if pk in position and held_codes[pk] == strings[position[pk]]}
    existing.update({len(strings) + j: tok for j, (_, _, tok) in enumerate(others)})
    tokens = disambiguate(keys, existing)[: len(strings)]
    rows = [
        SemanticId(run=run, product_id=pk, codes=codes[i].tolist(), code=strings[i], token=tokens[i],
                   reconstruction_error=float(errors[i]), gaps=[float(g) for g in gaps[i]])
        for i, pk in enumerate(product_ids.tolist())
    ]
    with transaction.atomic():
        # A product whose code changed releases its old (code, token) first.
        moved = [pk for pk in position if pk in held_codes and held_codes[pk] != strings[position[pk]]]
        SemanticId.objects.filter(run=run, product_id__in=moved).delete()
        for start in range(0, len(rows), WRITE_BATCH):
            SemanticId.objects.bulk_create(
                rows[start : start + WRITE_BATCH], update_conflicts=True, unique_fields=["run", "product"],
                update_fields=["codes", "code", "token", "reconstruction_error", "gaps"],
            )
    fill_words(run=run)  # the triggers keep the clusters' sizes and labels; new clusters get their words here


@transaction.atomic
def activate_run(run: QuantizerRun) -> QuantizerRun:
    """Make `run` the flavor's active run in one transaction: readers see the old run or the new one."""
    if run.status != QuantizerRun.Status.SUCCEEDED:
        raise ValueError(f"run #{run.pk} is {run.status}; only a succeeded run can be activated")
    QuantizerRun.objects.select_for_update().filter(flavor=run.flavor, is_active=True).exclude(pk=run.pk).update(
        is_active=False
    )
    QuantizerRun.objects.filter(pk=run.pk).update(is_active=True)
    run.is_active = True
    return run


def active_run(flavor: str, *, required: bool = True) -> QuantizerRun | None:
    run = QuantizerRun.objects.filter(flavor=flavor, is_active=True).first()
    if run is None and required:
        raise NoActiveRun(flavor)
    return run


def code_churn(*, old: QuantizerRun, new: QuantizerRun) -> dict:
    """Share of products whose 1-, 2- and L-level prefix changed between two runs."""
    before = dict(SemanticId.objects.filter(run=old).values_list("product_id", "codes"))
    after = dict(SemanticId.objects.filter(run=new).values_list("product_id", "codes"))
    common = [pk for pk in after if pk in before]
    if not common:
        return {}
    levels = len(next(iter(after.values())))
    churn = {}
    for depth in sorted({1, 2, levels}):
        changed = sum(before[pk][:depth] != after[pk][:depth] for pk in common)
        churn[f"prefix_{depth}"] = changed / len(common)
    churn["products"] = len(common)
    return churn


_MODELS: dict[int, object] = {}
_LOADING = threading.Lock()


def run_model(run: QuantizerRun):
    """The run's trained model, loaded once per process (a run's weights never change; threads of a web
    server asking at once wait for the one load)."""
    with _LOADING:
        if run.pk not in _MODELS:
            if len(_MODELS) >= 4:
                _MODELS.pop(next(iter(_MODELS)))
            _MODELS[run.pk] = load_model(run.weights, device=default_device())[0]
        return _MODELS[run.pk]


def assign_products(*, product_ids: list[int], flavors=None) -> int:
    """Code new or changed products with each flavor's active run, without retraining (cold start).

    The last level keeps off full codes other products hold (`held_codes`); a product whose text an
    already-coded product of the run has (same embedding) takes that product's code, as it would
    have in training."""
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
        hashes = dict(ProductEmbedding.objects.filter(flavor=flavor, product_id__in=recoded)
                      .values_list("product_id", "text_hash"))
        twins = twin_codes(run, hashes, exclude_product_ids=recoded)
        hints = near_duplicate_hints(run, vectors, exclude_product_ids=recoded)
        occupied = held_codes(run, exclude_product_ids=recoded)
        encoded = encode(model, vectors, device=default_device(), first_code_hints=hints, occupied=occupied)
        codes = encoded.codes
        if twins:
            is_twin = np.array([pk in twins for pk in recoded])
            codes = codes.copy()
            codes[is_twin] = [twins[pk] for pk in recoded if pk in twins]
            if not is_twin.all():  # the others again, without the twins contesting codes they do not keep
                codes[~is_twin] = encode(model, vectors[~is_twin], device=default_device(), occupied=occupied,
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
    vector = encode_texts(load_encoder(run.embedding_model), [text])
    encoded = encode(run_model(run), vector, device=default_device(), occupied=held_codes(run),
                     first_code_hints=near_duplicate_hints(run, vector))
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


def fail_runs_of_abandoned_job(*, job, **kwargs) -> int:
    """A job's worker died: the runs it had under way (its run, or those it created) are failed. The
    active run is never touched: activation is the last step of a run that succeeded."""
    unfinished = QuantizerRun.objects.filter(status__in=[QuantizerRun.Status.QUEUED, QuantizerRun.Status.RUNNING])
    runs = unfinished.filter(Q(pk=job.params.get("run_id", -1)) | Q(created_at__gte=job.created_at))
    return runs.update(status=QuantizerRun.Status.FAILED, message=f"job #{job.pk}'s worker stopped; retry the job",
                       finished_at=timezone.now())


def train_job(*, params: dict, user=None, progress=None) -> dict:
    run = QuantizerRun.objects.get(pk=params["run_id"])
    train_run(run=run, progress=progress, activate=params.get("activate", True))
    return {"run": run.pk, "metrics": run.metrics}
