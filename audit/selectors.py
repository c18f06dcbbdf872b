"""Reads for the review queues."""

from __future__ import annotations

from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from audit.models import Decision, Flag, Queue
from catalog.models import PATH_SEPARATOR
from quantizer.models import SemanticId


def filter_flags(queryset, filters: dict):
    """department (top-level category name), min_confidence / max_confidence, flavor, run."""
    if filters.get("department"):
        department = filters["department"]
        queryset = queryset.filter(
            Q(label__path=department) | Q(label__path__startswith=department + PATH_SEPARATOR)
            | Q(label__isnull=True, suggested__path=department)
            | Q(label__isnull=True, suggested__path__startswith=department + PATH_SEPARATOR)
        )
    if filters.get("min_confidence") not in (None, ""):
        queryset = queryset.filter(confidence__gte=float(filters["min_confidence"]))
    if filters.get("max_confidence") not in (None, ""):
        queryset = queryset.filter(confidence__lte=float(filters["max_confidence"]))
    if filters.get("flavor"):
        queryset = queryset.filter(run__flavor=filters["flavor"])
    if filters.get("run"):
        queryset = queryset.filter(run_id=int(filters["run"]))
    return queryset


def queue_flags(*, queue: str, filters: dict | None = None):
    base = Flag.objects.select_related("product", "label", "suggested", "run", "claimed_by")
    if queue == Queue.STALE:
        qs = base.filter(status=Flag.Status.STALE)
    elif queue == Queue.SECOND_REVIEW:
        qs = base.filter(status__in=Flag.DECIDED_STATES, needs_second_review=True, second_review_agrees__isnull=True)
    else:
        qs = base.filter(queue=queue, status__in=[Flag.Status.OPEN, Flag.Status.CLAIMED, Flag.Status.DEFERRED])
    return filter_flags(qs, filters or {}).order_by("-priority", "id")


def grid_flags(*, queue: str):
    """The queue's flags for the grid, each with its product's code in the flag's run."""
    code = SemanticId.objects.filter(run_id=OuterRef("run_id"), product_id=OuterRef("product_id")).values("code")[:1]
    return queue_flags(queue=queue).annotate(code=Subquery(code))


def queue_stats(*, filters: dict | None = None) -> list[dict]:
    """Open count per queue and the decisions made today."""
    today = timezone.localdate()
    decided_today = dict(
        Decision.objects.filter(created_at__date=today, is_second_review=False)
        .exclude(action__in=[Decision.Action.COMMENT, Decision.Action.UNDO])
        .values_list("flag__queue").annotate(n=Count("id"))
    )
    out = []
    for queue in Queue:
        out.append({
            "queue": queue.value,
            "label": queue.label,
            "open": queue_flags(queue=queue.value, filters=filters).count(),
            "decided_today": decided_today.get(queue.value, 0),
        })
    return out


def second_review_agreement() -> dict:
    """Second reviews done and the share that agreed with the first (one pass over a partial index)."""
    counts = Flag.objects.filter(second_review_agrees__isnull=False).aggregate(
        total=Count("id"), agree=Count("id", filter=Q(second_review_agrees=True)))
    total = counts["total"]
    return {"reviewed": total, "agreement": counts["agree"] / total if total else None}


def last_batch(*, reviewer) -> dict | None:
    """The reviewer's latest bulk batch with decisions still standing (undone batches give way to the one
    before): id, action, how many stand, when."""
    standing = Decision.objects.filter(reviewer=reviewer, batch__isnull=False, reverted_by__isnull=True).exclude(
        action__in=[Decision.Action.COMMENT, Decision.Action.UNDO])
    latest = standing.order_by("-created_at", "-id").first()
    if latest is None:
        return None
    return {"batch": latest.batch, "action": latest.action, "n": standing.filter(batch=latest.batch).count(),
            "at": latest.created_at}


def category_history(product) -> list[dict]:
    """Every category change of a product: who, when, from, to (from pghistory events)."""
    events = list(
        product.category_events.order_by("pgh_id").select_related("pgh_context").values(
            "pgh_created_at", "pgh_label", "category__path", "pgh_context__metadata"
        )
    )
    from django.contrib.auth import get_user_model

    users = {u.pk: u.username for u in get_user_model().objects.filter(
        pk__in=[(e["pgh_context__metadata"] or {}).get("user") for e in events if e["pgh_context__metadata"]])}
    out, previous = [], None
    for event in events:
        meta = event["pgh_context__metadata"] or {}
        out.append({
            "when": event["pgh_created_at"], "event": event["pgh_label"], "from": previous,
            "to": event["category__path"], "who": users.get(meta.get("user"), "system"),
            "source": meta.get("source", ""),
        })
        previous = event["category__path"]
    return out
