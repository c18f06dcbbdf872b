"""Who holds which flag. A claim is a lease with an expiry, taken with SELECT ... FOR UPDATE SKIP LOCKED on
the flag and on its product: two reviewers never get the same flag, nor two flags of one product. A lease is
given back on a decision, on "next", when the reviewer takes another flag of the queue, or when it runs out.
A flag whose product moved since it was scored is stale."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.roles import is_admin
from audit.models import Flag, Queue
from audit.review import ReviewError
from audit.selectors import filter_flags
from catalog.models import Product


def lease_end() -> datetime:
    """When a lease taken now runs out."""
    return timezone.now() + timedelta(seconds=settings.SEMID_CLAIM_LEASE_SECONDS)


def lease_running(flag: Flag) -> bool:
    return flag.claim_expires_at is not None and flag.claim_expires_at > timezone.now()


def held_by_other(flag: Flag, reviewer) -> bool:
    """Another reviewer's lease on the flag is running."""
    return flag.claimed_by_id not in (None, reviewer.pk) and lease_running(flag)


def held_elsewhere(flag: Flag, reviewer) -> Flag | None:
    """The product's other flag (the other flavor's, raised before flags were merged) that another reviewer
    holds a running lease on: the product is theirs until they decide or let go."""
    others = Flag.objects.filter(product_id=flag.product_id).exclude(pk=flag.pk)
    return others.leased_to_others(reviewer).select_related("claimed_by").first()


def refuse_held_elsewhere(flag: Flag, reviewer) -> None:
    other = held_elsewhere(flag, reviewer)
    if other is not None:
        raise ReviewError(f"{other.claimed_by} is reviewing this product on flag #{other.pk}")


def second_review_due(flag: Flag, reviewer) -> bool:
    return (flag.status in Flag.DECIDED_STATES and flag.needs_second_review and flag.second_review_agrees is None
            and flag.first_reviewer_id != reviewer.pk)


# --- stale flags ------------------------------------------------------------------------------------


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


# --- taking a lease ---------------------------------------------------------------------------------


def claimable(*, queue: str, reviewer, filters: dict | None = None) -> list:
    """The flags of a queue a reviewer may claim, as tiers taken in turn (open flags, then deferred ones),
    each best first. Each tier is one status of one queue, so its order comes from the flag_queue_order
    index and the first claimable flag is found without sorting the queue."""
    flags = filter_flags(Flag.objects.in_queue(queue).claimable(reviewer), filters or {})
    if queue in (Queue.STALE, Queue.SECOND_REVIEW):
        tiers = [flags]
    else:
        tiers = [flags.filter(status=status) for status in (Flag.Status.OPEN, Flag.Status.DEFERRED)]
    return [tier.order_by("-priority", "id") for tier in tiers]


def claim_next_flag(*, reviewer, queue: str = Queue.MISLABEL, filters: dict | None = None,
                    skip: int | None = None) -> Flag | None:
    """Lease the highest-priority flag of the queue (other than `skip`), or the one the reviewer holds in it.
    SKIP LOCKED, on the flag and on its product: two reviewers never get the same flag, nor two flags of one
    product."""
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


@transaction.atomic
def claim_flag(*, flag: Flag, reviewer) -> Flag:
    """Lease one given flag (opened from a link); refused while another reviewer's lease runs."""
    flag = locked_flag(flag.pk, "product")
    if held_by_other(flag, reviewer):
        raise ReviewError(f"flag #{flag.pk} is claimed by {flag.claimed_by} until {flag.claim_expires_at:%H:%M}")
    if not _lock_product(flag):
        raise ReviewError(f"another reviewer is deciding {flag.product.name} right now")
    refuse_held_elsewhere(flag, reviewer)
    if flag.status == Flag.Status.STALE:
        return _take(flag, reviewer)
    if (flag.status not in (Flag.Status.OPEN, Flag.Status.DEFERRED, Flag.Status.CLAIMED)
            and not second_review_due(flag, reviewer)):
        raise ReviewError(f"flag #{flag.pk} is already {flag.status}")
    return _take(flag, reviewer)


def _take(flag: Flag, reviewer) -> Flag:
    """One claim per reviewer and queue: taking a flag gives back the others the reviewer holds in its queue."""
    Flag.objects.filter(claimed_by=reviewer, queue=flag.queue).exclude(pk=flag.pk).release()
    flag.claimed_by = reviewer
    flag.claim_expires_at = lease_end()
    if flag.status in (Flag.Status.OPEN, Flag.Status.DEFERRED):
        flag.status = Flag.Status.CLAIMED
    flag.save(update_fields=["claimed_by", "claim_expires_at", "status", "updated_at"])
    return flag


def locked_flag(pk: int, *related) -> Flag:
    """The flag, its row locked for this transaction."""
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


def check_claim(flag: Flag, reviewer) -> None:
    """Deciding needs the reviewer's own claim (an admin decides any flag)."""
    if flag.claimed_by_id != reviewer.pk and not is_admin(reviewer):
        raise ReviewError(f"flag #{flag.pk} is not claimed by you: claim it first")
    if flag.claimed_by_id == reviewer.pk and flag.claim_expires_at and flag.claim_expires_at < timezone.now():
        # The lease ran out but nobody took the flag (the row is locked): renew it.
        flag.claim_expires_at = lease_end()


# --- giving a lease back ----------------------------------------------------------------------------


def release_claim(*, flag: Flag, reviewer) -> None:
    """Give back the reviewer's lease on a flag without deciding it."""
    Flag.objects.filter(pk=flag.pk, claimed_by=reviewer).release()


def release_expired_claims() -> None:
    """Claims whose lease ran out go back to the queue (open), so the queue's order serves them again; run
    before every next-flag claim."""
    Flag.objects.filter(status=Flag.Status.CLAIMED, claim_expires_at__lt=timezone.now()).release()


@transaction.atomic
def skip_to_next(*, flag: Flag | None, reviewer, queue: str, filters: dict | None = None) -> Flag | None:
    """Release `flag` (if held) and lease the next flag of the queue other than it."""
    if flag is not None:
        release_claim(flag=flag, reviewer=reviewer)
    return claim_next_flag(reviewer=reviewer, queue=queue, filters=filters, skip=flag.pk if flag else None)
