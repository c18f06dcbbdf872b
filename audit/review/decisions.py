"""Deciding flags: accept, reject, reassign, defer or comment; a second review; an admin's bulk accept or
reject; undo of the last decisions or of a batch. Each decision is written in one transaction with its
catalog change as an immutable Decision row, so none is lost and any can be reverted."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.roles import is_admin
from audit.models import Decision, Flag
from audit.review import FlagStale, ReviewError
from audit.review.claims import (
    check_claim, held_by_other, lease_end, locked_flag, refuse_held_elsewhere, second_review_due,
)
from catalog.models import Category, Product
from catalog.services import move_product


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
    flag = locked_flag(flag.pk, "product")
    product = Product.objects.select_for_update().get(pk=flag.product_id)
    if action not in Decision.Action.values or action == Decision.Action.UNDO:
        raise ReviewError(f"unknown action {action!r}")
    check_claim(flag, reviewer)
    refuse_held_elsewhere(flag, reviewer)  # deciding would close the other reviewer's flag under them
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
    twins = Flag.objects.filter(product_id=flag.product_id, status__in=Flag.LIVE_STATES).exclude(pk=flag.pk)
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
        flag.claimed_by, flag.claim_expires_at = reviewer, lease_end()
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
        twins = Flag.objects.filter(product_id__in=products, status__in=Flag.LIVE_STATES).exclude(pk__in=list(flags))
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
