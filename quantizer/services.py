"""Training runs: create, train (`train_run`'s steps), write codes, activate, churn, and the run's model.
Coding products with the active run without retraining (cold start) is in quantizer.assignment; the maths
in quantizer.core."""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from catalog.embeddings import model_name, product_vectors
from catalog.encoder import default_device
from catalog.models import Category, Product
from config.database import analyze_tables
from quantizer.clusters import fill_words, rebuild_cluster_summaries
from quantizer.inputs import check_extra_input, extra_input_weight, training_input
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
from quantizer.models import ClusterSummary, QuantizerRun, SemanticId

WRITE_BATCH = 5000  # rows formatted per write to COPY
# The codes go to a staging table by COPY, then into the run's in one upsert: the cluster summaries' statement
# triggers fire once (20,000 products: 7.9 s through bulk_create, see docs/benchmarks.md).
CODES_STAGING_TABLE = "semid_codes_import"
UPSERT_CODES_SQL = f"""
    INSERT INTO quantizer_semanticid (run_id, product_id, codes, code, token, reconstruction_error, gaps)
    SELECT %s, product_id, codes, code, token, reconstruction_error, gaps FROM {CODES_STAGING_TABLE}
    ORDER BY product_id
    ON CONFLICT (run_id, product_id) DO UPDATE SET codes = EXCLUDED.codes, code = EXCLUDED.code,
        token = EXCLUDED.token, reconstruction_error = EXCLUDED.reconstruction_error, gaps = EXCLUDED.gaps
"""

# Sent once a run's activation has committed, with the run as `run`: an app that keeps figures of the active
# runs (baskets: the clusters bought together) brings them up to date.
run_activated = Signal()
# Shares of a run's progress bar at which training ends and evaluation starts.
TRAINED, EVALUATING = 0.85, 0.94
# The cluster levels a run's codes are written with; the others are rebuilt set-based after the write, the levels
# side by side (`store_codes`): the triggers' work was most of writing the codes (100,000 products on this CPU:
# 10.31 s with every level; two, then the rest, 7.88 s; none, then every level, 8.40 s on 2 cores, whose levels
# run side by side where there are more cores: the codes' write 49.1 -> 21.9 s at 500,000 on the GPU machine;
# docs/benchmarks.md).
LEVELS_WITH_CODES = 0


class NoActiveRun(Exception):
    def __init__(self, flavor: str):
        super().__init__(
            f'no active run for flavor "{flavor}": train one with python manage.py pipeline --flavor {flavor}'
        )


# More product ids than this are read by their id range: a list of 100,000 ids in the query took 1.5 s, the
# range's rows 0.07 s (this CPU; training and the audit each read every product's category).
IDS_IN_QUERY_MAX = 5000


def taxonomy_array(product_ids: np.ndarray) -> np.ndarray:
    """(N, T) ids of each product's depth-(t+1) category (the ancestor's pk), -1 where absent."""
    if len(product_ids) > IDS_IN_QUERY_MAX:
        products = Product.objects.filter(pk__gte=int(product_ids.min()), pk__lte=int(product_ids.max()))
    else:
        products = Product.objects.filter(pk__in=product_ids.tolist())
    rows = dict(products.values_list("pk", "category_id"))
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
    """The recipe's defaults, then SEMID_QUANTIZER_OVERRIDES (settings), then `overrides` (a run's own: flat
    field names, `RQVAEConfig.to_dict`'s form)."""
    values = {"input_dim": input_dim, "seed": seed}
    if settings.SEMID_QUANTIZER_OVERRIDES:
        values.update(json.loads(settings.SEMID_QUANTIZER_OVERRIDES))
    values.update(overrides or {})
    return RQVAEConfig.from_dict(values)


def create_run(*, flavor: str, kind: str = QuantizerRun.Kind.RQVAE, seed: int = 0, overrides: dict | None = None,
               extra_input: str = "", user=None) -> QuantizerRun:
    """A queued run; `extra_input`: what it reads beside the text (quantizer.inputs, "" = the text alone),
    weighed as that input is registered."""
    return QuantizerRun.objects.create(
        flavor=flavor, kind=kind, seed=seed, embedding_model=model_name(), created_by=user,
        config=overrides or {}, extra_input=check_extra_input(extra_input),
        extra_input_weight=extra_input_weight(extra_input),
    )


def _set(run: QuantizerRun, **fields) -> None:
    QuantizerRun.objects.filter(pk=run.pk).update(**fields)
    for key, value in fields.items():
        setattr(run, key, value)


@dataclass
class Fitted:
    """What fitting a run's quantizer gave: every product's codes, and for an RQ-VAE its weights."""

    codes: np.ndarray  # (N, L) int64
    errors: np.ndarray  # (N,) float32 reconstruction error (0 for residual k-means)
    gaps: np.ndarray  # (N, L) float32
    nearest: np.ndarray | None = None  # (N, L) before the last level was spread (RQ-VAE)
    weights: bytes | None = None
    train_products: int = 0
    seconds: float = 0.0


def train_run(*, run: QuantizerRun, progress=None, activate: bool = True, given: TrainingData | None = None,
              searched: Searched | None = None) -> QuantizerRun:
    """Train (or fit) the run's quantizer on the stored embeddings, store its codes, evaluate, activate.
    A failure marks the run failed and leaves the active run as it was. The pipeline runs the steps apart:
    `fit_run`, then `store_codes` beside the run's audit (which scores what `fit_run` holds), then
    `evaluate_run`. `given`, `searched`: see `fit_run`."""
    trained = fit_run(run, progress=progress, given=given, searched=searched)
    store_codes(run, trained, progress=progress)
    evaluate_run(run, trained, progress=progress)
    if activate:
        activate_run(run)
    return run


@dataclass(frozen=True)
class TrainingData:
    """What a run trains on (`training_data`, then `training_input`): product ids, their embeddings, the vectors
    the run reads (the embeddings, with its extra input beside them), their `taxonomy_array`."""

    ids: np.ndarray
    embeddings: np.ndarray
    vectors: np.ndarray
    taxonomy: np.ndarray


@dataclass(frozen=True)
class Searched:
    """Neighbour searches made already (the train job's chunks, quantizer.fanout), each what the fit would search:
    the training sample's (`train_rqvae(neighbours=)`), the distinct rows' near-duplicate search
    (`encode(found=)`). None: searched in the fit."""

    train: np.ndarray | None = None
    groups: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class Trained:
    """A run's quantizer fitted, its codes not stored yet (`fit_run` -> `store_codes` -> `evaluate_run`)."""

    ids: np.ndarray  # (N,) product ids, aligned with fitted.codes
    embeddings: np.ndarray  # their stored text embeddings
    vectors: np.ndarray  # what the run trained on: the embeddings, with the run's extra input beside them
    taxonomy: np.ndarray
    config: RQVAEConfig
    fitted: Fitted
    active: QuantizerRun | None  # the flavor's active run when training started (warm start, churn)


def fit_run(run: QuantizerRun, *, progress=None, given: TrainingData | None = None,
            searched: Searched | None = None) -> Trained:
    """The run's quantizer trained (or fitted) on the stored embeddings and every product coded, in memory; the
    run's weights stored. The run stays running. `given`: what it trains on, read already (`read_training_data`);
    `searched`: neighbour searches made already."""
    torch.manual_seed(run.seed)
    _set(run, status=QuantizerRun.Status.RUNNING, message="loading embeddings", progress=0.0)
    try:
        ids, embeddings, vectors, taxonomy = dataclasses.astuple(given or read_training_data(run))
        config = run_config(run, vectors)
        active = active_run(run.flavor, required=False)
        fitted = fit_quantizer(run, vectors, taxonomy, config, active=active, progress=progress,
                               searched=searched or Searched())
        if fitted.weights is not None:
            run.store_weights(fitted.weights)
        _set(run, message="trained", progress=0.88, config=config.to_dict(), train_seconds=fitted.seconds,
             n_products=len(ids))
    except Exception as exc:
        _fail(run, exc)
        raise
    return Trained(ids, embeddings, vectors, taxonomy, config, fitted, active)


def store_codes(run: QuantizerRun, trained: Trained, *, progress=None) -> None:
    """A fitted run's codes written with their first `LEVELS_WITH_CODES` levels of clusters (none), then the others
    rebuilt, side by side (products and categories locked meanwhile). Database work only: the pipeline runs it on a
    thread beside the audit (torch's TF32 switches, which the audit's classifiers turn on, are process-wide).
    A failure marks the run failed."""
    fitted = trained.fitted
    try:
        _set(run, message="writing codes", progress=0.88)
        if progress:
            progress(0.88, 1.0, "writing codes")
        write_codes(run=run, product_ids=trained.ids, codes=fitted.codes, errors=fitted.errors, gaps=fitted.gaps,
                    summary_levels=LEVELS_WITH_CODES)
        if progress:
            progress(0.91, 1.0, "summarizing clusters")
        rebuild_cluster_summaries(run=run, first_level=LEVELS_WITH_CODES + 1)
        analyze_tables(SemanticId, ClusterSummary)  # the pages' plans need the new rows' statistics now
    except Exception as exc:
        _fail(run, exc)
        raise


def evaluate_run(run: QuantizerRun, trained: Trained, *, progress=None) -> QuantizerRun:
    """A stored run's metrics and churn (against the run active when it started); the run succeeds (not
    activated). A failure marks it failed."""
    try:
        _set(run, message="evaluating", progress=EVALUATING)
        if progress:
            progress(EVALUATING, 1.0, "evaluating")
        metrics = run_metrics(run, trained.vectors, trained.taxonomy, trained.config, trained.fitted)
        churn = code_churn(old=trained.active, new=run) if trained.active else {}
        _set(run, metrics=metrics, churn=churn, status=QuantizerRun.Status.SUCCEEDED, progress=1.0,
             message="done", finished_at=timezone.now())
    except Exception as exc:
        _fail(run, exc)
        raise
    return run


def _fail(run: QuantizerRun, exc: Exception) -> None:
    _set(run, status=QuantizerRun.Status.FAILED, message=f"{type(exc).__name__}: {exc}"[:500],
         finished_at=timezone.now())


def training_data(run: QuantizerRun) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run's flavor's stored embeddings: (N,) product ids, (N, D) vectors, (N, T) `taxonomy_array`."""
    ids, vectors = product_vectors(flavor=run.flavor)
    if len(ids) < 2:
        raise ValueError(f"only {len(ids)} {run.flavor} embeddings: import products and embed them first")
    return ids, vectors, taxonomy_array(ids)


def read_training_data(run: QuantizerRun) -> TrainingData:
    """`training_data` and the run's `training_input` (its extra input's rows kept with the run)."""
    ids, embeddings, taxonomy = training_data(run)
    return TrainingData(ids, embeddings, training_input(run, ids, embeddings), taxonomy)


def run_config(run: QuantizerRun, vectors: np.ndarray) -> RQVAEConfig:
    """The run's recipe for vectors of this width: the defaults with the run's overrides."""
    return default_config(input_dim=vectors.shape[1], seed=run.seed, overrides=run.config)


def fit_quantizer(run: QuantizerRun, vectors: np.ndarray, taxonomy: np.ndarray, config: RQVAEConfig, *,
                  active: QuantizerRun | None, progress=None, searched: Searched = Searched()) -> Fitted:
    """Residual k-means, or an RQ-VAE (warm-started from the active run where its architecture fits), and the
    codes it gives every product; `seconds` counts both."""
    started = time.perf_counter()
    if run.kind == QuantizerRun.Kind.RESIDUAL_KMEANS:
        fitted = fit_residual_kmeans(vectors, config, seed=run.seed)
    else:
        fitted = train_rqvae_run(run, vectors, taxonomy, config, active=active, progress=progress, searched=searched)
    fitted.seconds = time.perf_counter() - started
    return fitted


def fit_residual_kmeans(vectors: np.ndarray, config: RQVAEConfig, *, seed: int) -> Fitted:
    rules = config.assignment
    codes = residual_kmeans(vectors, config.model.codebook_sizes, seed=seed, device=default_device(),
                            spread=rules.spread_last_level, near_duplicate_threshold=rules.near_duplicate_threshold,
                            near_duplicate_max_group=rules.near_duplicate_max_group)
    return Fitted(codes=codes, errors=np.zeros(len(vectors), np.float32), gaps=np.zeros(codes.shape, np.float32),
                  train_products=len(vectors))


def train_rqvae_run(run: QuantizerRun, vectors: np.ndarray, taxonomy: np.ndarray, config: RQVAEConfig, *,
                    active: QuantizerRun | None, progress=None, searched: Searched = Searched()) -> Fitted:
    """Train the run's RQ-VAE (each epoch's losses appended to `run.history`) and encode every product."""
    init_state = None
    if active is not None and active.kind == run.kind and active.has_weights:
        init_state = _compatible_state(active.weights, config)
        if init_state is not None:
            _set(run, warm_start_from=active)

    def on_epoch(epoch, total, losses):
        _set(run, progress=TRAINED * epoch / total, message=f"epoch {epoch}/{total}",
             history=[*run.history, {"epoch": epoch, **losses}])
        if progress:
            progress(TRAINED * epoch / total, 1.0, f"epoch {epoch}/{total}")

    result = train_rqvae(vectors, taxonomy, config, device=default_device(), on_epoch=on_epoch,
                         init_state=init_state, neighbours=searched.train)
    weights = save_model(result.model, config)
    encoded = encode(result.model, vectors, device=default_device(), found=searched.groups)
    return Fitted(codes=encoded.codes, errors=encoded.reconstruction_error, gaps=encoded.gaps,
                  nearest=encoded.nearest_codes, weights=weights, train_products=result.train_products)


def run_metrics(run: QuantizerRun, vectors: np.ndarray, taxonomy: np.ndarray, config: RQVAEConfig,
                fitted: Fitted) -> dict:
    """The run's intrinsic metrics (quantizer.core.metrics), with the products it trained on and, for an
    RQ-VAE, the collision rate its nearest codes would have had (what the spread last level saved)."""
    metrics = intrinsic_metrics(vectors, fitted.codes, taxonomy, seed=run.seed, device=default_device(),
                                codebook_sizes=config.model.codebook_sizes, reconstruction_error=fitted.errors)
    metrics["train_products"] = fitted.train_products
    if fitted.nearest is not None:
        metrics["collision_rate_nearest"] = collision_rates(vectors, fitted.nearest)[0]
    return metrics


def _compatible_state(weights: bytes, config: RQVAEConfig) -> dict | None:
    """The previous run's weights, when they fit the new run's architecture (warm start); else None."""
    previous, _ = load_model(weights)
    state, fresh = previous.state_dict(), RQVAE(config).state_dict()
    if state.keys() != fresh.keys() or any(state[k].shape != fresh[k].shape for k in state):
        return None
    return state


def write_codes(*, run: QuantizerRun, product_ids: np.ndarray, codes: np.ndarray, errors: np.ndarray,
                gaps: np.ndarray, summary_levels: int | None = None) -> None:
    """Upsert the run's SemanticIds; existing products keep their disambiguation token. The run's cluster
    summaries follow (quantizer.clusters): every level, or the first `summary_levels` (the rest then rebuilt:
    `store_codes`)."""
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
    with transaction.atomic(), connection.cursor() as cursor:
        if summary_levels is not None:  # the triggers' bound, until the upsert is done (migration 0007)
            cursor.execute("SELECT set_config('semid.summary_levels', %s, true)", [str(summary_levels)])
        # A product whose code changed releases its old (code, token) first.
        moved = [pk for pk in position if pk in held_codes and held_codes[pk] != strings[position[pk]]]
        SemanticId.objects.filter(run=run, product_id__in=moved).delete()
        cursor.execute(f"CREATE TEMPORARY TABLE {CODES_STAGING_TABLE} (product_id bigint, codes integer[], "
                       "code varchar(100), token integer, reconstruction_error float8, gaps float8[]) ON COMMIT DROP")
        with cursor.cursor.copy(f"COPY {CODES_STAGING_TABLE} FROM STDIN") as copy:
            for start in range(0, len(strings), WRITE_BATCH):
                copy.write(_codes_copy_text(product_ids, codes, strings, tokens, errors, gaps, start,
                                            start + WRITE_BATCH))
        cursor.execute(UPSERT_CODES_SQL, [run.pk])
        cursor.execute(f"DROP TABLE {CODES_STAGING_TABLE}")
        if summary_levels is not None:
            cursor.execute("SELECT set_config('semid.summary_levels', '', true)")
    fill_words(run=run)  # the triggers keep the clusters' sizes and labels; new clusters get their words here


def _codes_copy_text(product_ids, codes, strings, tokens, errors, gaps, start: int, stop: int) -> str:
    """Rows start..stop as COPY text. Floats are written as Python's repr of the float32 widened to float64
    (what the ORM sent before), which PostgreSQL reads back exactly."""
    return "".join(
        f"{pk}\t{{{','.join(map(str, row))}}}\t{code}\t{token}\t{error!r}\t{{{','.join(map(repr, gap))}}}\n"
        for pk, row, code, token, error, gap in zip(
            product_ids[start:stop].tolist(), codes[start:stop].tolist(), strings[start:stop], tokens[start:stop],
            errors[start:stop].astype(np.float64).tolist(), gaps[start:stop].astype(np.float64).tolist())
    )


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
    transaction.on_commit(lambda: run_activated.send(sender=QuantizerRun, run=run))
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


_LOADING = threading.Lock()


def run_model(run: QuantizerRun) -> RQVAE:
    """The run's trained model, loaded once per process (a run's weights never change); the 4 runs asked
    for last stay loaded. Threads of a web server asking at once wait for the one load."""
    with _LOADING:
        return _model_of_run(run.pk)


@functools.lru_cache(maxsize=4)
def _model_of_run(pk: int) -> RQVAE:
    return load_model(QuantizerRun.objects.get(pk=pk).weights, device=default_device())[0]


def fail_runs_of_abandoned_job(*, job, **kwargs) -> int:
    """A job's worker died: the runs it had under way (its run, or those it created) are failed. The
    active run is never touched: activation is the last step of a run that succeeded."""
    unfinished = QuantizerRun.objects.filter(status__in=[QuantizerRun.Status.QUEUED, QuantizerRun.Status.RUNNING])
    runs = unfinished.filter(Q(pk=job.params.get("run_id", -1)) | Q(created_at__gte=job.created_at))
    return runs.update(status=QuantizerRun.Status.FAILED, message=f"job #{job.pk}'s worker stopped; retry the job",
                       finished_at=timezone.now())

