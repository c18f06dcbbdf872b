"""The audit (scoring -> flags) and the review workflow (claim, decide, undo), shared by UI and API."""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from accounts.roles import is_admin
from audit.core import calibrate, product_words, score_products, taxonomy_issues
from audit.models import AuditReport, Decision, Flag, Queue, Score
from catalog.embeddings import product_vectors
from catalog.encoder import default_device
from catalog.models import Category, Product
from catalog.services import move_product
from quantizer.models import QuantizerRun, SemanticId
from quantizer.services import active_run, taxonomy_array


# A flag that may still be decided: a product has at most one of these.
LIVE_STATES = (Flag.Status.OPEN, Flag.Status.CLAIMED, Flag.Status.DEFERRED, Flag.Status.STALE)


class ReviewError(Exception):
    """A review action that cannot be done as asked; the message is for the reviewer."""


class FlagStale(ReviewError):
    pass


# --- audit ------------------------------------------------------------------------------------


def run_audit(*, run: QuantizerRun, progress=None, threshold: float | None = None) -> AuditReport:
    """Score every product of the run, calibrate, and create or refresh its flags."""
    threshold = settings.SEMID_FLAG_THRESHOLD if threshold is None else threshold
    step = progress or (lambda *a, **k: None)
    ids, vectors = product_vectors(flavor=run.flavor)
    codes_by_product = dict(SemanticId.objects.filter(run=run).values_list("product_id", "codes"))
    keep = np.array([pk in codes_by_product for pk in ids.tolist()], dtype=bool)
    ids, vectors = ids[keep], vectors[keep]
    codes = np.array([codes_by_product[pk] for pk in ids.tolist()], dtype=np.int64)
    taxonomy = taxonomy_array(ids)
    products = Product.objects.in_bulk(ids.tolist())
    brands = np.array([products[pk].brand.lower() for pk in ids.tolist()], dtype=object)
    texts = [product_words(products[pk].name, products[pk].brand) for pk in ids.tolist()]
    step(0.1, 1.0, "scoring")
    scores = score_products(embeddings=vectors, taxonomy=taxonomy, codes=codes, seed=run.seed, brands=brands,
                            texts=texts, device=default_device())
    step(0.5, 1.0, "calibrating")
    calibrator = calibrate(embeddings=vectors, taxonomy=taxonomy, codes=codes, combiner=scores.combiner,
                           seed=run.seed + 1, brands=brands, texts=texts, device=default_device(), reuse=scores)
    confidence = calibrator.predict(scores.raw_score)
    step(0.8, 1.0, "writing flags")
    paths = dict(Category.objects.values_list("pk", "path"))
    label_ids = scores.label_ids()
    flagged = []
    for i, pk in enumerate(ids.tolist()):
        unlabelled = label_ids[i] < 0
        suggested = int(scores.suggested[i])
        if not unlabelled and confidence[i] < threshold:
            continue
        product = products[pk]
        evidence = _evidence(scores, i, codes, ids, products, paths)
        flagged.append((product, suggested, float(1.0 if unlabelled else confidence[i]), evidence, unlabelled,
                        float(scores.suggested_prob[i])))
    stats = _write_flags(run=run, flagged=flagged)
    _write_scores(run=run, ids=ids, products=products, scores=scores, confidence=confidence,
                  flagged={f[0].pk for f in flagged})
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
    Score.objects.filter(run=run).delete()
    rows = [
        Score(run=run, product_id=pk, label_id=products[pk].category_id, suggested_id=int(scores.suggested[i]),
              confidence=float(min(max(confidence[i], 0.0), 1.0)) if products[pk].category_id else 1.0,
              raw_score=float(scores.raw_score[i]), flagged=pk in flagged)
        for i, pk in enumerate(ids.tolist())
    ]
    Score.objects.bulk_create(rows, batch_size=5000)


def _evidence(scores, i, codes, ids, products, paths) -> dict:
    raw = scores.evidence(i, codes)
    cluster = raw["cluster"]
    neighbours = []
    for j, similarity, label in raw["neighbours"][:8]:
        other = products[int(ids[j])]
        neighbours.append({"product": other.pk, "external_id": other.external_id, "name": other.name,
                           "label": paths.get(label, ""), "similarity": similarity})
    return {
        "cluster": {**cluster, "composition": [[paths.get(c, "?"), n] for c, n in cluster["composition"]]},
        "neighbours": neighbours,
        "suggestions": [[paths.get(c, "?"), round(p, 4)] for c, p in raw["suggestions"]],
        "signals": raw["signals"],
    }


def _signature(suggested: int, evidence: dict) -> str:
    composition = evidence["cluster"]["composition"]
    dominant = composition[0][0] if composition else ""
    return hashlib.sha256(f"{suggested}|{dominant}".encode()).hexdigest()[:16]


def queue_priority(*, confidence: float, suggested_prob: float, unlabelled: bool) -> float:
    """The queue's order: the calibrated confidence as it is (strictly increasing in the raw score,
    so the queue keeps the scorer's whole ranking); for an uncategorized product, how sure its
    suggestion is. Equal priorities (equal raw scores) keep the flags' id order."""
    return float(suggested_prob if unlabelled else confidence)


@transaction.atomic
def _write_flags(*, run: QuantizerRun, flagged: list) -> dict:
    """Create or refresh the run's flags. One flag per product: where another run (the other flavor)
    already holds an undecided flag on the product, this run's view joins that flag's evidence
    (``evidence["flavors"]``) instead of raising a second flag."""
    existing = {f.product_id: f for f in Flag.objects.filter(run=run).select_for_update()}
    elsewhere = {
        f.product_id: f for f in Flag.objects.filter(status__in=LIVE_STATES, product_id__in=[f[0].pk for f in flagged])
        .exclude(run=run).select_for_update(of=("self",))
    }
    rejected = {
        (f.product_id, f.label_id): f.evidence_signature
        for f in Flag.objects.filter(status=Flag.Status.REJECTED).only("product_id", "label_id", "evidence_signature")
    }
    created = refreshed = suppressed = merged = 0
    raised = set()
    paths = dict(Category.objects.values_list("pk", "path")) if elsewhere else {}  # for merged views only
    for product, suggested, confidence, evidence, unlabelled, suggested_prob in flagged:
        signature = _signature(suggested, evidence)
        if rejected.get((product.pk, product.category_id)) == signature:
            suppressed += 1  # a reviewer said no, and nothing material changed since
            continue
        twin = elsewhere.get(product.pk)
        if twin is not None and existing.get(product.pk) is None:
            view = {"suggested": paths.get(suggested, ""), "confidence": round(min(max(confidence, 0.0), 1.0), 4)}
            twin.evidence = {**twin.evidence, "flavors": {**twin.evidence.get("flavors", {}), run.flavor: view}}
            Flag.objects.filter(pk=twin.pk).update(evidence=twin.evidence)
            merged += 1
            continue
        values = {
            "queue": Queue.UNCATEGORIZED if unlabelled else Queue.MISLABEL,
            "label_id": product.category_id,
            "suggested_id": suggested,
            "confidence": min(max(confidence, 0.0), 1.0),
            "priority": queue_priority(confidence=confidence, suggested_prob=suggested_prob, unlabelled=unlabelled),
            "evidence": evidence,
            "evidence_signature": signature,
            "product_updated_at": product.updated_at,
        }
        raised.add(product.pk)
        flag = existing.get(product.pk)
        if flag is None:
            Flag.objects.create(product=product, run=run, **values)
            created += 1
        elif flag.status in (Flag.Status.OPEN, Flag.Status.STALE, Flag.Status.DEFERRED, Flag.Status.REJECTED):
            # a rejected flag gets here only when its evidence changed materially since the rejection;
            # a deferred one stays deferred: a reviewer put it aside, a new audit does not undo that
            status = Flag.Status.DEFERRED if flag.status == Flag.Status.DEFERRED else Flag.Status.OPEN
            Flag.objects.filter(pk=flag.pk).update(status=status, **values)
            refreshed += 1
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


# --- review -------------------------------------------------------------------------------------


def _lease() -> timedelta:
    return timedelta(seconds=settings.SEMID_CLAIM_LEASE_SECONDS)


def release_expired_claims() -> int:
    """Claims whose lease ran out go back to the queue (open), so the queue's order serves them again."""
    return Flag.objects.filter(status=Flag.Status.CLAIMED, claim_expires_at__lt=timezone.now()).update(
        status=Flag.Status.OPEN, claimed_by=None, claim_expires_at=None
    )


def mark_stale_flags() -> int:
    """Open flags whose product moved to another category since it was scored are stale; a stale flag
    whose product is back in the category it was scored under (an undo) is open again."""
    Flag.objects.filter(status=Flag.Status.STALE, product__category=F("label"), decisions__isnull=True).update(
        status=Flag.Status.OPEN)
    return Flag.objects.filter(
        status__in=[Flag.Status.OPEN, Flag.Status.DEFERRED], product__updated_at__gt=F("product_updated_at")
    ).exclude(product__category=F("label")).update(status=Flag.Status.STALE)


def _sweep_stale_flags() -> None:
    """mark_stale_flags reads every open flag: at most once per SEMID_STALE_SWEEP_SECONDS per process. A claim
    checks its own candidate anyway (`_moved_since_scored`), so this only keeps the stale queue filled."""
    seconds = settings.SEMID_STALE_SWEEP_SECONDS
    if seconds <= 0 or cache.add("semid:stale-sweep", True, timeout=seconds):
        mark_stale_flags()


def _moved_since_scored(flag: Flag) -> bool:
    product = flag.product
    return product.updated_at > flag.product_updated_at and product.category_id != flag.label_id


def claimable(*, queue: str, reviewer, filters: dict | None = None) -> list:
    """The flags of a queue a reviewer may claim, as tiers taken in turn (open flags, then deferred ones),
    each best first. Each tier is one status of one queue, so its order comes from the flag_queue_order
    index and the first claimable flag is found without sorting the queue."""
    from audit.selectors import filter_flags

    now = timezone.now()
    if queue == Queue.SECOND_REVIEW:
        tiers = [Flag.objects.filter(
            status__in=Flag.DECIDED_STATES, needs_second_review=True, second_review_agrees__isnull=True
        ).exclude(first_reviewer=reviewer)]
    elif queue == Queue.STALE:
        tiers = [Flag.objects.filter(status=Flag.Status.STALE)]
    else:
        tiers = [Flag.objects.filter(queue=queue, status=status) for status in (Flag.Status.OPEN, Flag.Status.DEFERRED)]
    # a product another reviewer is reviewing on its other flag (the other flavor's) is theirs
    held_elsewhere = _leased(Flag.objects.filter(product_id=OuterRef("product_id")).exclude(pk=OuterRef("pk")),
                             reviewer, now)
    return [
        filter_flags(tier.filter(Q(claimed_by__isnull=True) | Q(claim_expires_at__lt=now) | Q(claimed_by=reviewer))
                     .exclude(Exists(held_elsewhere)), filters or {}).order_by("-priority", "id")
        for tier in tiers
    ]


def claim_next_flag(*, reviewer, queue: str = Queue.MISLABEL, filters: dict | None = None,
                    skip: int | None = None) -> Flag | None:
    """Lease the highest-priority flag of the queue (other than `skip`). SKIP LOCKED, on the flag and on its
    product: two reviewers never get the same flag, nor two flags of one product."""
    _sweep_stale_flags()
    release_expired_claims()
    with transaction.atomic():
        mine = Flag.objects.filter(claimed_by=reviewer, status=Flag.Status.CLAIMED, claim_expires_at__gt=timezone.now())
        if queue != Queue.SECOND_REVIEW:
            mine = mine.filter(queue=queue)
        held = mine.exclude(pk=skip).order_by("-priority").first()
        if held:
            return held
        passed = [skip] if skip else []
        for tier in claimable(queue=queue, reviewer=reviewer, filters=filters):
            while True:
                flag = (tier.exclude(pk__in=passed).select_related("product")
                        .select_for_update(skip_locked=True, of=("self",)).first())
                if flag is None:
                    break
                passed.append(flag.pk)
                if flag.status in (Flag.Status.OPEN, Flag.Status.DEFERRED) and _moved_since_scored(flag):
                    Flag.objects.filter(pk=flag.pk).update(status=Flag.Status.STALE)  # moved by an import or an admin
                elif _lock_product(flag) and held_elsewhere(flag, reviewer) is None:
                    return _take(flag, reviewer)
                # else its product is being decided or claimed right now
        return None


def _take(flag: Flag, reviewer) -> Flag:
    _release_others(flag, reviewer)
    flag.claimed_by = reviewer
    flag.claim_expires_at = timezone.now() + _lease()
    if flag.status in (Flag.Status.OPEN, Flag.Status.DEFERRED):
        flag.status = Flag.Status.CLAIMED
    flag.save(update_fields=["claimed_by", "claim_expires_at", "status", "updated_at"])
    return flag


def lease_running(flag: Flag) -> bool:
    return flag.claim_expires_at is not None and flag.claim_expires_at > timezone.now()


def held_by_other(flag: Flag, reviewer) -> bool:
    """Another reviewer's lease on the flag is running."""
    return flag.claimed_by_id not in (None, reviewer.pk) and lease_running(flag)


def _leased(flags, reviewer, now):
    return flags.filter(claimed_by__isnull=False, claim_expires_at__gt=now).exclude(claimed_by=reviewer)


def held_elsewhere(flag: Flag, reviewer) -> Flag | None:
    """The product's other flag (the other flavor's, raised before flags were merged) that another reviewer
    holds a running lease on: the product is theirs until they decide or let go."""
    others = Flag.objects.filter(product_id=flag.product_id).exclude(pk=flag.pk)
    return _leased(others, reviewer, timezone.now()).select_related("claimed_by").first()


def _refuse_held_elsewhere(flag: Flag, reviewer) -> None:
    other = held_elsewhere(flag, reviewer)
    if other is not None:
        raise ReviewError(f"{other.claimed_by} is reviewing this product on flag #{other.pk}")


def _locked_flag(pk: int, *related) -> Flag:
    try:
        return Flag.objects.select_for_update(of=("self",)).select_related(*related).get(pk=pk)
    except Flag.DoesNotExist:
        raise ReviewError(f"flag #{pk} no longer exists: its product was decided on its other flag, or an audit "
                          "withdrew it") from None


def _lock_product(flag: Flag) -> bool:
    """Lock the flag's product row unless another transaction holds it (a decision or a claim on the product
    in flight); never waits, so a claim can not deadlock with a decision closing the product's other flag."""
    return bool(list(Product.objects.select_for_update(skip_locked=True).filter(pk=flag.product_id)
                     .values_list("pk", flat=True)))


@transaction.atomic
def claim_flag(*, flag: Flag, reviewer) -> Flag:
    """Lease one given flag (opened from a link); refused while another reviewer's lease runs."""
    flag = _locked_flag(flag.pk, "product")
    if held_by_other(flag, reviewer):
        raise ReviewError(f"flag #{flag.pk} is claimed by {flag.claimed_by} until {flag.claim_expires_at:%H:%M}")
    if not _lock_product(flag):
        raise ReviewError(f"another reviewer is deciding {flag.product.name} right now")
    _refuse_held_elsewhere(flag, reviewer)
    if flag.status == Flag.Status.STALE:
        return _take(flag, reviewer)
    if flag.status not in (Flag.Status.OPEN, Flag.Status.DEFERRED, Flag.Status.CLAIMED) and not second_review_due(flag, reviewer):
        raise ReviewError(f"flag #{flag.pk} is already {flag.status}")
    return _take(flag, reviewer)


def _release_others(flag: Flag, reviewer) -> None:
    """One claim per reviewer and queue: taking a flag gives back the others the reviewer holds in its queue."""
    others = Flag.objects.filter(claimed_by=reviewer, queue=flag.queue).exclude(pk=flag.pk)
    others.filter(status=Flag.Status.CLAIMED).update(status=Flag.Status.OPEN, claimed_by=None, claim_expires_at=None)
    others.exclude(status=Flag.Status.CLAIMED).update(claimed_by=None, claim_expires_at=None)


def second_review_due(flag: Flag, reviewer) -> bool:
    return (flag.status in Flag.DECIDED_STATES and flag.needs_second_review and flag.second_review_agrees is None
            and flag.first_reviewer_id != reviewer.pk)


def _check_claim(flag: Flag, reviewer) -> None:
    if flag.claimed_by_id != reviewer.pk and not is_admin(reviewer):
        raise ReviewError(f"flag #{flag.pk} is not claimed by you: claim it first")
    if flag.claimed_by_id == reviewer.pk and flag.claim_expires_at and flag.claim_expires_at < timezone.now():
        # The lease ran out but nobody took the flag (the row is locked): renew it.
        flag.claim_expires_at = timezone.now() + _lease()


def decide_flag(*, flag: Flag, reviewer, action: str, category: Category | None = None, note: str = "") -> Decision:
    """One transaction: the flag's new state, the catalog change, and an immutable Decision row."""
    try:
        return _decide_flag(flag=flag, reviewer=reviewer, action=action, category=category, note=note)
    except FlagStale:
        Flag.objects.filter(pk=flag.pk).update(status=Flag.Status.STALE)  # outlives the rolled-back decision
        raise


@transaction.atomic
def _decide_flag(*, flag: Flag, reviewer, action: str, category: Category | None, note: str,
                 batch: uuid.UUID | None = None) -> Decision:
    flag = _locked_flag(flag.pk, "product")
    product = Product.objects.select_for_update().get(pk=flag.product_id)
    if action not in Decision.Action.values or action == Decision.Action.UNDO:
        raise ReviewError(f"unknown action {action!r}")
    _check_claim(flag, reviewer)
    _refuse_held_elsewhere(flag, reviewer)  # deciding would close the other reviewer's flag under them
    status_before = flag.status
    if action == Decision.Action.COMMENT:
        if not note.strip():
            raise ReviewError("a comment needs text")
        return Decision.objects.create(flag=flag, product=product, reviewer=reviewer, action=action, note=note,
                                       from_category_id=product.category_id, to_category_id=product.category_id,
                                       flag_status_before=status_before)
    if second_review_due(flag, reviewer):
        return _second_review(flag, product, reviewer, action, category, note, batch)
    if flag.status not in (Flag.Status.CLAIMED, Flag.Status.OPEN, Flag.Status.DEFERRED, Flag.Status.STALE):
        raise ReviewError(f"flag #{flag.pk} is already {flag.status}")
    if product.category_id != flag.label_id:  # the label the flag argues with is no longer the product's
        if action in (Decision.Action.ACCEPT,):
            flag.status = Flag.Status.STALE
            flag.save(update_fields=["status", "updated_at"])
            raise FlagStale(
                f"{product.name} changed since it was scored (now in {product.category or 'no category'}); "
                "reject, reassign, or wait for the next audit"
            )
    from_category = product.category
    to_category = from_category
    if action == Decision.Action.ACCEPT:
        if flag.suggested is None:
            raise ReviewError("this flag has no suggested category: reassign it instead")
        to_category = flag.suggested
        flag.status = Flag.Status.ACCEPTED
    elif action == Decision.Action.REASSIGN:
        if category is None:
            raise ReviewError("reassign needs a category")
        to_category = category
        flag.status = Flag.Status.REASSIGNED
    elif action == Decision.Action.REJECT:
        flag.status = Flag.Status.REJECTED
    elif action == Decision.Action.DEFER:
        flag.status = Flag.Status.DEFERRED
    if to_category != from_category:
        move_product(product=product, category=to_category, user=reviewer, source=f"review:{action}")
    if flag.status in Flag.DECIDED_STATES:
        flag.first_reviewer = reviewer
        flag.needs_second_review = random.random() < settings.SEMID_SECOND_REVIEW_SHARE
        _close_twins(flag)
    flag.claimed_by, flag.claim_expires_at = None, None
    flag.product_updated_at = product.updated_at  # move_product's save refreshed it
    flag.save()
    return Decision.objects.create(
        flag=flag, product=product, reviewer=reviewer, action=action, note=note, from_category=from_category,
        to_category=to_category, flag_status_before=status_before, batch=batch,
    )


def _close_twins(flag: Flag) -> None:
    """The product is decided: its other undecided flags (another run's, raised before flags were merged)
    go, so no queue shows the product again under an out-of-date label. One with a history (a deferral, a
    comment) is kept, superseded: out of every queue, never decided."""
    twins = Flag.objects.filter(product_id=flag.product_id, status__in=LIVE_STATES).exclude(pk=flag.pk)
    twins.filter(decisions__isnull=True).delete()
    twins.update(status=Flag.Status.SUPERSEDED, claimed_by=None, claim_expires_at=None)


def _second_review(flag, product, reviewer, action, category, note, batch=None) -> Decision:
    first = flag.decisions.filter(is_second_review=False, reverted_by__isnull=True).exclude(
        action__in=[Decision.Action.COMMENT, Decision.Action.UNDO]).first()
    first_to = first.to_category_id if first else product.category_id
    if action == Decision.Action.REASSIGN:
        agrees = category is not None and category.pk == first_to
    else:
        agrees = action == Decision.Action.ACCEPT  # "accept" = I agree with the first decision
    flag.second_review_agrees = agrees
    flag.claimed_by, flag.claim_expires_at = None, None
    flag.save()
    return Decision.objects.create(
        flag=flag, product=product, reviewer=reviewer, action=action, note=note, is_second_review=True,
        from_category=product.category, to_category=product.category, flag_status_before=flag.status, batch=batch,
    )


@transaction.atomic
def undo_last_decisions(*, reviewer, count: int = 1) -> list[Decision]:
    """Revert the reviewer's last `count` decisions: the catalog change and the flag state. The flags
    come back claimed by the reviewer, to be decided again."""
    decisions = (
        Decision.objects.select_for_update(of=("self",))  # reverted_by is an outer join
        .filter(reviewer=reviewer, reverted_by__isnull=True, is_second_review=False)
        .exclude(action__in=[Decision.Action.UNDO, Decision.Action.COMMENT])
        .order_by("-created_at", "-id")[:count]
    )
    return [_revert(decision, reviewer, reclaim=True) for decision in decisions]


def _revert(decision: Decision, reviewer, *, reclaim: bool) -> Decision:
    """Undo one decision. `reclaim`: the flag comes back claimed by the reviewer; otherwise it goes back
    to the queue as it was before the decision (open, deferred or stale), claimed by nobody."""
    product = Product.objects.select_for_update().get(pk=decision.product_id)
    flag = Flag.objects.select_for_update().get(pk=decision.flag_id)
    status_before = flag.status
    if decision.is_second_review:  # the first decision stands; only the verdict on it goes
        flag.second_review_agrees = None
        flag.save(update_fields=["second_review_agrees", "updated_at"])
        return Decision.objects.create(
            flag=flag, product=product, reviewer=reviewer, action=Decision.Action.UNDO, reverts=decision,
            is_second_review=True, from_category_id=product.category_id, to_category_id=product.category_id,
            flag_status_before=status_before,
        )
    # Another reviewer's second review is theirs: a confirmed decision stays, and one under review is not pulled away.
    second = (flag.decisions.filter(is_second_review=True, reverted_by__isnull=True, created_at__gte=decision.created_at)
              .exclude(action=Decision.Action.UNDO).select_related("reviewer").first())
    if second is not None:
        raise ReviewError(f"{product.name}: {second.reviewer} has second-reviewed this decision; it can no "
                          "longer be undone")
    if held_by_other(flag, reviewer):
        raise ReviewError(f"{product.name}: {flag.claimed_by} is second-reviewing this decision; undo it after")
    if decision.to_category_id != decision.from_category_id:
        if product.category_id != decision.to_category_id:
            raise ReviewError(f"{product.name} was moved again since; undo that change first")
        move_product(product=product, category=decision.from_category, user=reviewer, source="review:undo")
    if reclaim:
        flag.status = Flag.Status.CLAIMED
        flag.claimed_by, flag.claim_expires_at = reviewer, timezone.now() + _lease()
    else:
        requeued = (Flag.Status.OPEN, Flag.Status.DEFERRED, Flag.Status.STALE)
        flag.status = decision.flag_status_before if decision.flag_status_before in requeued else Flag.Status.OPEN
        flag.claimed_by, flag.claim_expires_at = None, None
    flag.needs_second_review, flag.first_reviewer, flag.second_review_agrees = False, None, None
    flag.product_updated_at = product.updated_at  # move_product's save refreshed it
    flag.save()
    return Decision.objects.create(
        flag=flag, product=product, reviewer=reviewer, action=Decision.Action.UNDO, reverts=decision,
        from_category_id=decision.to_category_id, to_category_id=decision.from_category_id,
        flag_status_before=status_before,
    )


# --- bulk ---------------------------------------------------------------------------------------


BULK_ACTIONS = (Decision.Action.ACCEPT, Decision.Action.REJECT)


@dataclass
class Skipped:
    """A flag a bulk action (or a batch undo) left as it was, and why, in words for the reviewer."""

    flag_id: int
    product: str
    reason: str


@dataclass
class BatchResult:
    batch: uuid.UUID
    decisions: list[Decision] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def decide_batch(*, flag_ids, reviewer, action: str, note: str = "") -> BatchResult:
    """Admins accept or reject many flags in one transaction, each through the single-decision path
    (`_decide_flag`: the same checks, catalog change and Decision row). Rows another transaction holds
    (a reviewer deciding or claiming right now) are skipped, never waited for; so are flags another
    reviewer has claimed, products another reviewer is reviewing on another flag, second reviews not
    due to this reviewer, decided flags, and stale ones. Every skip is reported with its reason. The
    decisions share one batch id, which `undo_batch` reverts together."""
    if not is_admin(reviewer):
        raise ReviewError("bulk decisions are for admins")
    if action not in BULK_ACTIONS:
        raise ReviewError("bulk decisions are accept or reject")
    ids = list(dict.fromkeys(int(pk) for pk in flag_ids))
    result = BatchResult(batch=uuid.uuid4())
    with transaction.atomic():
        flags = {f.pk: f for f in Flag.objects.filter(pk__in=ids).select_related("product", "claimed_by")
                 .select_for_update(skip_locked=True, of=("self",))}
        names = dict(Flag.objects.filter(pk__in=set(ids) - set(flags)).values_list("pk", "product__name"))
        products = {f.product_id for f in flags.values()}
        free_products = set(Product.objects.filter(pk__in=products).select_for_update(skip_locked=True)
                            .values_list("pk", flat=True))
        twins = Flag.objects.filter(product_id__in=products, status__in=LIVE_STATES).exclude(pk__in=list(flags))
        free_twins = set(twins.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True))
        twins_of: dict[int, list[Flag]] = {}
        for twin in twins.select_related("claimed_by"):
            twins_of.setdefault(twin.product_id, []).append(twin)
        decided_products: dict[int, int] = {}
        for pk in ids:
            flag = flags.get(pk)
            if flag is None:
                reason = "another reviewer is working on it right now" if pk in names else "it no longer exists"
                result.skipped.append(Skipped(pk, names.get(pk, ""), reason))
                continue
            reason = _bulk_refusal(flag, reviewer, free_products, free_twins, twins_of.get(flag.product_id, []),
                                   decided_products)
            if reason is None:
                try:
                    decision = _decide_flag(flag=flag, reviewer=reviewer, action=action, category=None, note=note,
                                            batch=result.batch)
                except FlagStale as exc:
                    Flag.objects.filter(pk=flag.pk).update(status=Flag.Status.STALE)  # the savepoint rolled it back
                    reason = str(exc)
                except ReviewError as exc:
                    reason = str(exc)
                else:
                    result.decisions.append(decision)
                    decided_products[flag.product_id] = flag.pk
                    continue
            result.skipped.append(Skipped(pk, flag.product.name, reason))
    return result


def batch_refusal(flags: list[Flag], action: str) -> str | None:
    """Why the whole batch is refused up front (rather than stopped half-way through), or None."""
    decided = sorted(f.pk for f in flags if f.status not in {*Flag.OPEN_STATES, Flag.Status.STALE})
    if decided:
        return f"already decided: flag(s) {', '.join(map(str, decided))}"
    unsuggested = sorted(f.pk for f in flags if action == Decision.Action.ACCEPT and f.suggested_id is None)
    if unsuggested:
        return f"no suggested category to accept: flag(s) {', '.join(map(str, unsuggested))}"
    return None


def _bulk_refusal(flag: Flag, reviewer, free_products, free_twins, twins, decided_products) -> str | None:
    """Why a bulk action leaves this (locked) flag alone, or None."""
    if flag.product_id in decided_products:
        return f"decided in this batch on flag #{decided_products[flag.product_id]}"
    if held_by_other(flag, reviewer):
        return f"claimed by {flag.claimed_by} until {timezone.localtime(flag.claim_expires_at):%H:%M}"
    if flag.status in Flag.DECIDED_STATES and not second_review_due(flag, reviewer):
        if flag.needs_second_review and flag.second_review_agrees is None and flag.first_reviewer_id == reviewer.pk:
            return "you made the first decision: its second review is another reviewer's"
        return f"already {flag.status}"
    if flag.product_id not in free_products:
        return "another reviewer is deciding this product right now"
    for twin in twins:  # the product's other live flag (the other flavor's, raised before flags were merged)
        if twin.pk not in free_twins:
            return f"another reviewer is working on this product's flag #{twin.pk} right now"
        if held_by_other(twin, reviewer):
            return f"{twin.claimed_by} is reviewing this product on flag #{twin.pk}"
    return None


@transaction.atomic
def undo_batch(*, reviewer, batch: uuid.UUID) -> BatchResult:
    """Revert every decision of one of the reviewer's batches in one transaction; the flags go back to the
    queue unclaimed. A decision that can no longer be undone (second-reviewed, under second review, its
    product moved since) stays, and is reported."""
    result = BatchResult(batch=batch)
    decisions = (
        Decision.objects.select_for_update(of=("self",)).select_related("product")
        .filter(reviewer=reviewer, batch=batch, reverted_by__isnull=True)
        .exclude(action__in=[Decision.Action.UNDO, Decision.Action.COMMENT])
        .order_by("-created_at", "-id")
    )
    for decision in decisions:
        try:
            with transaction.atomic():
                result.decisions.append(_revert(decision, reviewer, reclaim=False))
        except ReviewError as exc:
            result.skipped.append(Skipped(decision.flag_id, decision.product.name, str(exc)))
    return result


def bulk_decide(*, flags, reviewer, action: str, note: str = "") -> list[Decision]:
    """`decide_batch` for callers that have the flags: the decisions made (the others were skipped)."""
    return decide_batch(flag_ids=[f.pk for f in flags], reviewer=reviewer, action=action, note=note).decisions
