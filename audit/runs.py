"""An audit run: score every product of a quantizer run, calibrate, and write its flags (one per product,
ordered for the queues), its scores (what `export_audit` writes) and a report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models.expressions import RawSQL

from audit.core import CodePrefixes, calibrate, product_words, score_products, taxonomy_issues, text_terms
from audit.evidence import Evidence, FlavorView
from audit.models import AuditReport, Flag, Queue, Score
from config.database import analyze_tables, copy_arrays, copy_objects
from catalog.embeddings import embedded_ids, product_vectors
from catalog.encoder import default_device
from catalog.models import Category, Product
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


def audit_texts(*, flavor: str, ids: np.ndarray | None = None) -> AuditTexts:
    """`AuditTexts` of `ids`; by default of the products with a vector of the flavor, by id, as the run's
    training reads them (`catalog.embeddings.embedded_ids`)."""
    if ids is None:
        ids = embedded_ids(flavor=flavor)
    products = audit_products()
    words = [product_words(products[pk].name, products[pk].brand) for pk in ids.tolist()]
    return AuditTexts(ids, products, words, text_terms(words))


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


def run_audit(*, run: QuantizerRun, progress=None, threshold: float | None = None,
              given: AuditInput | None = None) -> AuditReport:
    """Score every product of the run, calibrate, and create or refresh its flags. `given`: what to score when
    the caller holds it (the pipeline, `AuditInput.of` the run it trained); else `audit_input(run)`. Its texts
    are read and counted here unless `given` holds them for the same products."""
    threshold = settings.SEMID_FLAG_THRESHOLD if threshold is None else threshold
    step = progress or (lambda *a, **k: None)
    ids, vectors, taxonomy, codes, texts = given if given is not None else audit_input(run)
    if texts is None or not texts.fits(ids):
        texts = audit_texts(flavor=run.flavor, ids=ids)
    products = texts.products
    brands = np.array([products[pk].brand.lower() for pk in ids.tolist()], dtype=object)
    step(0.1, 1.0, "scoring")
    scores = score_products(embeddings=vectors, taxonomy=taxonomy, codes=codes, seed=run.seed, brands=brands,
                            texts=texts.words, terms=texts.terms, device=default_device())
    step(0.5, 1.0, "calibrating")
    calibrator = calibrate(embeddings=vectors, taxonomy=taxonomy, codes=codes, combiner=scores.combiner,
                           seed=run.seed + 1, brands=brands, texts=texts.words, device=default_device(),
                           reuse=scores)
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


def audit_job(*, params: dict, user=None, progress=None) -> dict:
    from jobs.runner import JobFailed

    run = QuantizerRun.objects.get(pk=params["run_id"]) if params.get("run_id") else active_run(params["flavor"])
    try:
        report = run_audit(run=run, progress=progress)
    except ValueError as exc:  # the catalog cannot be audited as it is (too small, one category)
        raise JobFailed(f"audit of run #{run.pk} not possible: {exc}") from None
    return {"run": run.pk, "report": report.pk, **report.stats}
