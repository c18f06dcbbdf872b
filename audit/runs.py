"""An audit run: score every product of a quantizer run, calibrate, and write its flags (one per product,
ordered for the queues), its scores (what `export_audit` writes) and a report.

`run_audit` does it all in one process (the pipeline audits the run it trained, in memory). The audit job fans out
(`audit_plan`): the plan reads the run's products, counts their texts and chooses the classifiers' L2 weight, and
writes what the classifiers read into a folder of SEMID_HOME, which every worker shares (as it shares uploads);
each fold classifier of the catalog's labels and of the calibration copy's is a chunk (`fit_audit_fold`), any
worker's; the finish (`finish_audit`) is `run_audit` with the fitted folds, so its flags and scores are those of
one process.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models.expressions import RawSQL

from audit.core import (CodePrefixes, ScoringConfig, calibrate, leaf_classes, product_words, score_products,
                        taxonomy_issues, text_terms)
from audit.core.calibration import CALIBRATION_RATE, copy_taxonomy
from audit.core.scoring import FoldFit, fold_fits, scorable_labels, scoring_signals
from audit.core.signals import choose_weight_decay, fit_fold, fold_of, text_features
from audit.evidence import Evidence, FlavorView
from audit.models import AuditReport, Flag, Queue, Score
from config.database import analyze_tables, copy_arrays, copy_objects
from catalog.embeddings import embedded_ids, product_vectors
from catalog.encoder import default_device
from catalog.models import Category, Product
from jobs.folders import new_folder, remove_folder, save_arrays, save_result
from quantizer.models import QuantizerRun, SemanticId
from quantizer.services import Trained, active_run, taxonomy_array


# pg_advisory_xact_lock key taken by every flag write: two audits (one per flavor, on two workers) write their flags
# one after the other, so the second sees the first's flags and joins them instead of raising a second flag on a
# product (`_write_flags`). Any fixed bigint that no other lock of the database uses.
FLAG_WRITE_LOCK = 0x5E41D_F1A6
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AuditProduct(NamedTuple):
    """What the audit reads of a product (a million whole rows, descriptions and attributes, cost minutes). The
    version it scored as whole microseconds since the epoch: exact, and the read takes less than half the time it
    takes with datetimes (`bench/audit_io.py`); `updated_at` gives the datetime where a flag needs it."""

    pk: int
    external_id: str
    name: str
    brand: str
    category_id: int | None
    updated_us: int

    @property
    def updated_at(self) -> datetime:
        return EPOCH + timedelta(microseconds=self.updated_us)


def audit_products() -> dict[int, AuditProduct]:
    """Every product's `AuditProduct` by id, in one pass over the table (no list of a million ids to match)."""
    rows = (Product.objects.annotate(updated_us=RawSQL("(EXTRACT(EPOCH FROM updated_at) * 1000000)::bigint", []))
            .values_list(*AuditProduct._fields).iterator(chunk_size=20_000))
    return {row[0]: AuditProduct(*row) for row in rows}


class AuditTexts(NamedTuple):
    """The products as the audit reads them, their words (`product_words`) and the words' TF-IDF (`text_terms`),
    row by row in the order of `ids`. None of it depends on the codes: the pipeline reads and counts it while
    its run trains (`audit_texts`)."""

    ids: np.ndarray
    products: dict[int, AuditProduct]
    words: list[str]
    terms: object  # scipy CSR (N, terms) or None

    def fits(self, ids: np.ndarray) -> bool:
        return np.array_equal(self.ids, ids)


def audit_texts(*, flavor: str, ids: np.ndarray | None = None, count: bool = True) -> AuditTexts:
    """`AuditTexts` of `ids`; by default of the products with a vector of the flavor, by id, as the run's
    training reads them (`catalog.embeddings.embedded_ids`). `count=False`: no TF-IDF (the texts' features are
    computed already)."""
    if ids is None:
        ids = embedded_ids(flavor=flavor)
    products = audit_products()
    words = [product_words(products[pk].name, products[pk].brand) for pk in ids.tolist()]
    return AuditTexts(ids, products, words, text_terms(words) if count else None)


class AuditInput(NamedTuple):
    """What the audit scores, row by row: product ids, their text embeddings, `taxonomy_array` and codes; and
    where the caller has them, their `AuditTexts`."""

    ids: np.ndarray
    vectors: np.ndarray
    taxonomy: np.ndarray
    codes: np.ndarray
    texts: AuditTexts | None = None

    @classmethod
    def of(cls, trained: Trained, texts: AuditTexts | None = None) -> AuditInput:
        """A fitted run's own (the pipeline audits it while its codes are written): nothing read again."""
        return cls(trained.ids, trained.embeddings, trained.taxonomy, trained.fitted.codes, texts)


def audit_input(run: QuantizerRun) -> AuditInput:
    """The run's products with stored codes, their embeddings and categories, read from the database."""
    ids, vectors = product_vectors(flavor=run.flavor)
    codes_by_product = dict(SemanticId.objects.filter(run=run).values_list("product_id", "codes"))
    keep = np.array([pk in codes_by_product for pk in ids.tolist()], dtype=bool)
    ids, vectors = ids[keep], vectors[keep]
    codes = np.array([codes_by_product[pk] for pk in ids.tolist()], dtype=np.int64)
    return AuditInput(ids, vectors, taxonomy_array(ids), codes)


class AuditFits(NamedTuple):
    """What a fanned-out audit computed before its finish (`audit_plan`): the classifiers' L2 weight, the texts'
    features (None: too few terms) and every fold classifier, {signal: [(mean, std, w, b) a fold]}, of the
    catalog's labels and of the calibration copy's."""

    weight_decay: float
    lexical: np.ndarray | None
    catalog: dict
    copy: dict


def _brands(products: dict, ids: np.ndarray) -> np.ndarray:
    return np.array([products[pk].brand.lower() for pk in ids.tolist()], dtype=object)


def run_audit(*, run: QuantizerRun, progress=None, threshold: float | None = None,
              given: AuditInput | None = None, fits: AuditFits | None = None) -> AuditReport:
    """Score every product of the run, calibrate, and create or refresh its flags. `given`: what to score when
    the caller holds it (the pipeline, `AuditInput.of` the run it trained); else `audit_input(run)`. Its texts
    are read and counted here unless `given` holds them for the same products. `fits`: what `audit_plan` and its
    chunks computed for the same products (nothing is fitted again)."""
    threshold = settings.SEMID_FLAG_THRESHOLD if threshold is None else threshold
    step = progress or (lambda *a, **k: None)
    ids, vectors, taxonomy, codes, texts = given if given is not None else audit_input(run)
    if texts is None or not texts.fits(ids):
        texts = audit_texts(flavor=run.flavor, ids=ids, count=fits is None)
    products = texts.products
    brands = _brands(products, ids)
    config = ScoringConfig() if fits is None else ScoringConfig(classifier_weight_decay=fits.weight_decay)
    step(0.1, 1.0, "scoring")
    scores = score_products(embeddings=vectors, taxonomy=taxonomy, codes=codes, seed=run.seed, brands=brands,
                            texts=texts.words, terms=texts.terms, device=default_device(), config=config,
                            lexical=None if fits is None else fits.lexical,
                            fold_models=None if fits is None else fits.catalog)
    step(0.5, 1.0, "calibrating")
    calibrator = calibrate(embeddings=vectors, taxonomy=taxonomy, codes=codes, combiner=scores.combiner,
                           seed=run.seed + 1, brands=brands, texts=texts.words, device=default_device(),
                           reuse=scores, config=config, fold_models=None if fits is None else fits.copy)
    confidence = calibrator.predict(scores.raw_score)
    step(0.8, 1.0, "writing flags")
    paths = dict(Category.objects.values_list("pk", "path"))
    label_ids = scores.label_ids()
    prefixes = CodePrefixes(codes)
    flagged = []
    for i, pk in enumerate(ids.tolist()):
        unlabelled = label_ids[i] < 0
        suggested = int(scores.suggested[i])
        if not unlabelled and confidence[i] < threshold:
            continue
        evidence = Evidence.from_scores(scores.evidence(i, codes, prefixes=prefixes, label_ids=label_ids), ids,
                                          products, paths)
        flagged.append((products[pk], suggested, float(1.0 if unlabelled else confidence[i]), evidence, unlabelled,
                        float(scores.suggested_prob[i])))
    stats = _write_flags(run=run, flagged=flagged)
    _write_scores(run=run, ids=ids, products=products, scores=scores, confidence=confidence,
                  flagged={f[0].pk for f in flagged})
    analyze_tables(Flag, Score)
    issues = [
        {"a": paths.get(a, str(a)), "b": paths.get(b, str(b)), "overlap": round(o, 5), "n": n}
        for a, b, o, n in taxonomy_issues(scores, top=20)
    ]
    report = AuditReport.objects.create(
        run=run, calibration=calibrator.to_dict(), taxonomy_issues=issues,
        stats={**stats, "products": len(ids), "threshold": threshold,
               "classifier_weight_decay": scores.combiner.classifier_weight_decay,
               "mean_confidence": float(confidence[label_ids >= 0].mean()) if (label_ids >= 0).any() else 0.0},
    )
    step(1.0, 1.0, "done")
    return report


@transaction.atomic
def _write_scores(*, run, ids, products, scores, confidence, flagged) -> None:
    """Replace the run's scores, one row a product, by binary COPY (a million ORM objects took minutes): the
    labelled products' rows, then the others' without a label."""
    Score.objects.filter(run=run).delete()
    label = np.array([products[pk].category_id or 0 for pk in ids.tolist()], dtype=np.int64)  # 0: none
    rows = {"run_id": run.pk, "product_id": np.asarray(ids, np.int64), "label_id": label,
            "suggested_id": np.asarray(scores.suggested, np.int64),
            "confidence": np.where(label > 0, np.clip(confidence, 0.0, 1.0), 1.0).astype(np.float64),
            "raw_score": np.asarray(scores.raw_score, np.float64),
            "flagged": np.isin(ids, np.fromiter(flagged, np.int64, len(flagged)))}
    unlabelled = {name: values for name, values in rows.items() if name != "label_id"}  # label NULL
    for part, columns in ((label > 0, rows), (label == 0, unlabelled)):
        if part.any():
            copy_arrays(Score._meta.db_table,
                        {name: values[part] if np.ndim(values) else values for name, values in columns.items()})


def queue_priority(*, confidence: float, suggested_prob: float, unlabelled: bool) -> float:
    """The queue's order: the calibrated confidence as it is (strictly increasing in the raw score,
    so the queue keeps the scorer's whole ranking); for an uncategorized product, how sure its
    suggestion is. Equal priorities (equal raw scores) keep the flags' id order."""
    return float(suggested_prob if unlabelled else confidence)


@transaction.atomic
def _write_flags(*, run: QuantizerRun, flagged: list) -> dict:
    """Create or refresh the run's flags from (product, suggested category id, confidence, Evidence,
    unlabelled, suggested probability) tuples. One flag per product: where another run (the other flavor)
    already holds an undecided flag on the product, this run's view joins that flag's evidence
    (`Evidence.flavors`) instead of raising a second flag. A rejected flag is raised again only when its
    evidence signature changed. Flag writes of all runs take turns (FLAG_WRITE_LOCK, until the commit)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [FLAG_WRITE_LOCK])
    existing = {f.product_id: f for f in Flag.objects.filter(run=run).select_for_update()}
    elsewhere = {
        f.product_id: f for f in Flag.objects.filter(status__in=Flag.LIVE_STATES,
                                                     product_id__in=[f[0].pk for f in flagged])
        .exclude(run=run).select_for_update(of=("self",))
    }
    rejected = {
        (f.product_id, f.label_id): f.evidence_signature
        for f in Flag.objects.filter(status=Flag.Status.REJECTED).only("product_id", "label_id", "evidence_signature")
    }
    refreshed = suppressed = merged = 0
    raised, new = set(), []
    paths = dict(Category.objects.values_list("pk", "path")) if elsewhere else {}  # for merged views only
    for product, suggested, confidence, evidence, unlabelled, suggested_prob in flagged:
        signature = evidence.signature(suggested)
        if rejected.get((product.pk, product.category_id)) == signature:
            suppressed += 1  # a reviewer said no, and nothing material changed since
            continue
        twin = elsewhere.get(product.pk)
        if twin is not None and existing.get(product.pk) is None:
            view = FlavorView(suggested=paths.get(suggested, ""), confidence=round(min(max(confidence, 0.0), 1.0), 4))
            twin.evidence = Evidence.from_json(twin.evidence).with_flavor(run.flavor, view).to_json()
            Flag.objects.filter(pk=twin.pk).update(evidence=twin.evidence)
            merged += 1
            continue
        values = {
            "queue": Queue.UNCATEGORIZED if unlabelled else Queue.MISLABEL,
            "label_id": product.category_id,
            "suggested_id": suggested,
            "confidence": min(max(confidence, 0.0), 1.0),
            "priority": queue_priority(confidence=confidence, suggested_prob=suggested_prob, unlabelled=unlabelled),
            "evidence": evidence.to_json(),
            "evidence_signature": signature,
            "product_updated_at": product.updated_at,
        }
        raised.add(product.pk)
        flag = existing.get(product.pk)
        if flag is None:
            new.append(Flag(product_id=product.pk, run=run, **values))
        elif flag.status in (Flag.Status.OPEN, Flag.Status.STALE, Flag.Status.DEFERRED, Flag.Status.REJECTED):
            # a rejected flag gets here only when its evidence changed materially since the rejection;
            # a deferred one stays deferred: a reviewer put it aside, a new audit does not undo that
            status = Flag.Status.DEFERRED if flag.status == Flag.Status.DEFERRED else Flag.Status.OPEN
            Flag.objects.filter(pk=flag.pk).update(status=status, **values)
            refreshed += 1
    created = copy_objects(Flag, new)
    # open flags no longer raised and never decided are withdrawn
    withdrawn = Flag.objects.filter(run=run, status=Flag.Status.OPEN).exclude(product_id__in=raised)
    withdrawn = withdrawn.filter(decisions__isnull=True).delete()[0]
    return {"created": created, "refreshed": refreshed, "suppressed": suppressed, "withdrawn": withdrawn,
            "merged": merged, "flagged": len(raised)}


# --- the audit fanned out over workers ---------------------------------------------------------------------------

AUDIT_FITS = "audit-fits"  # the folder of SEMID_HOME where each fanned-out audit keeps its inputs and fitted folds


def audit_plan(run: QuantizerRun, *, progress=None):
    """The audit of `run` as chunks, one a fold classifier (`fold_fits`, of the catalog's labels and of the
    calibration copy's), in this order: read the run's products and texts, count the texts and reduce them
    (`text_features`), choose the classifiers' L2 weight (`choose_weight_decay`), draw the folds; then write the
    arrays the chunks and the finish read into a folder of their own under SEMID_HOME/audit-fits (binary .npy;
    `jobs.folders`). The same choices as `score_products` and `calibrate` make in
    one process, so the finish gives its flags. ValueError where the catalog cannot be audited (`scorable_labels`)."""
    from jobs.runner import Chunked

    step = progress or (lambda *a, **k: None)
    step(0.0, 1.0, "reading")
    ids, vectors, taxonomy, codes, _ = audit_input(run)
    config, device = ScoringConfig(), default_device()
    leaf_paths, labels = scorable_labels(taxonomy, config)
    texts = audit_texts(flavor=run.flavor, ids=ids)
    brands = _brands(texts.products, ids)
    step(0.3, 1.0, "counting the texts")
    lexical = text_features(texts.words, seed=run.seed, device=device, terms=texts.terms)
    inputs = vectors if lexical is None else np.hstack([vectors, lexical])
    step(0.6, 1.0, "choosing the classifiers' weight")
    weight_decay = choose_weight_decay(inputs, labels, len(leaf_paths), n_folds=config.n_folds, seed=run.seed,
                                       device=device, max_iter=config.classifier_max_iter)
    del inputs
    signals = scoring_signals(brands)
    copy_leaves, copy_labels = leaf_classes(copy_taxonomy(taxonomy, rate=CALIBRATION_RATE, seed=run.seed + 1,
                                                          embeddings=vectors)[0])
    fits = (fold_fits(labels, signals=signals, seed=run.seed, config=config)
            + fold_fits(copy_labels, signals=signals, seed=run.seed + 1, copy=True, config=config))
    arrays = {"ids": ids, "vectors": vectors, "taxonomy": taxonomy, "codes": codes, "labels-catalog": labels,
              "labels-copy": copy_labels}
    if lexical is not None:
        arrays["lexical"] = lexical
    for which, these in (("catalog", labels), ("copy", copy_labels)):
        for signal, n_folds, seed in {(f.signal, f.n_folds, f.seed) for f in fits if f.copy == (which == "copy")}:
            arrays[f"folds-{which}-{signal}"] = fold_of(these, n_folds, seed, brands if signal == "brand_out" else None)
    folder = new_folder(AUDIT_FITS, f"run-{run.pk}", kind="audit")
    save_arrays(folder, arrays)
    step(1.0, 1.0, f"{len(fits)} fold classifiers to fit")
    state = {"run": run.pk, "folder": str(folder), "weight_decay": weight_decay,
             "leaves": {"catalog": len(leaf_paths), "copy": len(copy_leaves)}}
    return Chunked(chunks=[dataclasses.asdict(fit) for fit in fits], run_chunk="audit.runs.fit_audit_fold",
                   finish="audit.runs.finish_audit", cleanup="audit.runs.remove_audit_fits", state=state)


def _which(fit: FoldFit) -> str:
    return "copy" if fit.copy else "catalog"


def _fit_file(fit: FoldFit) -> str:
    return f"fit-{_which(fit)}-{fit.signal}-{fit.fold}.npz"


def fit_audit_fold(*, params: dict, state: dict, chunk: dict, progress=None) -> dict:
    """One chunk of `audit_plan`: its fold classifier (`fit_fold`) on the plan's inputs, written beside them."""
    import torch

    fit, folder = FoldFit(**chunk), Path(state["folder"])
    if progress:
        progress(0.0, 1.0, f"{'calibrating' if fit.copy else 'scoring'}: {fit.signal} fold {fit.fold + 1} of "
                           f"{fit.n_folds}")
    x = torch.as_tensor(_classifier_inputs(folder), device=torch.device(default_device()))
    model = fit_fold(x, np.load(folder / f"labels-{_which(fit)}.npy"),
                     np.load(folder / f"folds-{_which(fit)}-{fit.signal}.npy"), fit.fold,
                     state["leaves"][_which(fit)], state["weight_decay"], ScoringConfig().classifier_max_iter)
    save_result(folder / _fit_file(fit), **{f"arr_{i}": t.cpu().numpy() for i, t in enumerate(model)})
    return chunk


def _classifier_inputs(folder: Path, block: int = 65_536) -> np.ndarray:
    """(N, d) float32: the plan's vectors and, where there are any, the texts' features beside them, as
    `score_products` stacks them; filled a block of rows at a time from the files (memory-mapped), so a million
    products' inputs are held once (2.5 GB), not also as the two arrays they are stacked from."""
    parts = [np.load(folder / "vectors.npy", mmap_mode="r")]
    if (folder / "lexical.npy").exists():
        parts.append(np.load(folder / "lexical.npy", mmap_mode="r"))
    inputs = np.empty((len(parts[0]), sum(part.shape[1] for part in parts)), np.float32)
    for start in range(0, len(inputs), block):
        np.concatenate([part[start:start + block] for part in parts], axis=1, out=inputs[start:start + block])
    return inputs


def audit_fits(state: dict, fitted: list[dict]) -> AuditFits:
    """The plan's L2 weight and text features, and every fold its chunks fitted (`fit_audit_fold`: `fitted` are
    their results, each its chunk)."""
    folder = Path(state["folder"])
    models = {"catalog": {}, "copy": {}}
    for fit in (FoldFit(**chunk) for chunk in fitted):
        with np.load(folder / _fit_file(fit)) as saved:
            model = tuple(saved[f"arr_{i}"] for i in range(4))
        models[_which(fit)].setdefault(fit.signal, [None] * fit.n_folds)[fit.fold] = model
    lexical = folder / "lexical.npy"
    return AuditFits(state["weight_decay"], np.load(lexical) if lexical.exists() else None, models["catalog"],
                     models["copy"])


def finish_audit(*, params: dict, state: dict, results: list[dict], progress=None) -> dict:
    """`run_audit` of the products the plan read, with the folds its chunks fitted; the folder goes after."""
    run = QuantizerRun.objects.get(pk=state["run"])
    folder = Path(state["folder"])
    ids = np.load(folder / "ids.npy")
    given = AuditInput(ids, *(np.load(folder / f"{name}.npy") for name in ("vectors", "taxonomy", "codes")),
                       texts=audit_texts(flavor=run.flavor, ids=ids, count=False))
    report = run_audit(run=run, given=given, fits=audit_fits(state, results), progress=progress)
    remove_audit_fits(params=params, state=state)
    return job_result(report)


def job_result(report: AuditReport) -> dict:
    """What an audit job records as its result: the run, the report and its figures."""
    return {"run": report.run_id, "report": report.pk, **report.stats}


def remove_audit_fits(*, params: dict, state: dict) -> None:
    """The plan's folder, once its audit is over (finished, failed or abandoned)."""
    remove_folder(state)


# Where the audit job fans out. On a GPU it runs in one process: at a million products on an H200 the plan's
# writes and the finish's reads alone (116.5 s) outlast the whole audit in memory (103.3 s), and the chunks,
# the part workers share, took 44 s (docs/performance.md, "The audit job at a million, on the H200").
FAN_OUT_DEVICES = ("cpu",)


def audit_job(*, params: dict, user=None, progress=None):
    """The audit of a run (`params["run_id"]`, or the active run of `params["flavor"]`): fanned out
    (`audit_plan`) on CPU workers, `run_audit` in this process on a GPU (`FAN_OUT_DEVICES`)."""
    from jobs.runner import JobFailed

    run = QuantizerRun.objects.get(pk=params["run_id"]) if params.get("run_id") else active_run(params["flavor"])
    try:
        if default_device() in FAN_OUT_DEVICES:
            return audit_plan(run, progress=progress)
        return job_result(run_audit(run=run, progress=progress))
    except ValueError as exc:  # the catalog cannot be audited as it is (too small, one category)
        raise JobFailed(f"audit of run #{run.pk} not possible: {exc}") from None
