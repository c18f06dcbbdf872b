"""Reads for the review queues."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import TruncDate
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
    """The queue's flags still to review (`Flag.objects.in_queue`), best first."""
    flags = Flag.objects.in_queue(queue).select_related("product", "label", "suggested", "run", "claimed_by")
    return filter_flags(flags, filters or {}).order_by("-priority", "id")


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


# what a reviewer's work counts: decisions that stand (an undone one is not work done), comments and undos aside
def _work():
    return Decision.objects.filter(reverted_by__isnull=True).exclude(
        action__in=[Decision.Action.COMMENT, Decision.Action.UNDO])


def _start_of(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def reviewer_activity(*, today=None) -> list[dict]:
    """Per reviewer: decisions today and this week (from Monday), second reviews done this week, and how
    often second reviewers agreed with the reviewer's own decisions. Busiest first."""
    today = today or timezone.localdate()
    day, week = _start_of(today), _start_of(today - timedelta(days=today.weekday()))
    rows = {
        r["reviewer"]: r for r in _work().values("reviewer").annotate(
            today=Count("id", filter=Q(created_at__gte=day, is_second_review=False)),
            week=Count("id", filter=Q(created_at__gte=week, is_second_review=False)),
            second_week=Count("id", filter=Q(created_at__gte=week, is_second_review=True)),
        ).filter(Q(week__gt=0) | Q(second_week__gt=0))
    }
    checked = {
        r["first_reviewer"]: r for r in Flag.objects.filter(second_review_agrees__isnull=False)
        .values("first_reviewer").annotate(total=Count("id"), agree=Count("id", filter=Q(second_review_agrees=True)))
    }
    names = dict(get_user_model().objects.filter(pk__in=set(rows) | set(checked)).values_list("pk", "username"))
    out = []
    for pk in set(rows) | set(checked):
        row, check = rows.get(pk, {}), checked.get(pk, {})
        total = check.get("total", 0)
        out.append({"reviewer": names.get(pk, "?"), "today": row.get("today", 0), "week": row.get("week", 0),
                    "second_week": row.get("second_week", 0), "checked": total,
                    "agreement": check.get("agree", 0) / total if total else None})
    return sorted(out, key=lambda r: (-r["week"], -r["today"], r["reviewer"]))


BURNDOWN_QUEUES = (Queue.MISLABEL, Queue.UNCATEGORIZED)


def queue_burndown(*, queue: str, days: int = 14, today=None) -> list[dict]:
    """Open flags of the queue at the end of each of the last `days` days, walked back from today's count
    through the decision timestamps: a decision that closed an open flag adds one back before it, an undo
    of one takes one away, a flag raised later takes one away. Flags an audit withdrew or merged leave no
    trace, so an earlier day can read a little low."""
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    since = _start_of(first)
    closing = [Decision.Action.ACCEPT, Decision.Action.REJECT, Decision.Action.REASSIGN]
    open_before = [Flag.Status.OPEN, Flag.Status.CLAIMED, Flag.Status.DEFERRED]

    def per_day(queryset) -> dict:
        return dict(queryset.filter(created_at__gte=since).annotate(day=TruncDate("created_at"))
                    .values_list("day").annotate(n=Count("id")))

    decisions = Decision.objects.filter(flag__queue=queue, is_second_review=False)
    closed = per_day(decisions.filter(action__in=closing, flag_status_before__in=open_before))
    reopened = per_day(decisions.filter(action=Decision.Action.UNDO, reverts__action__in=closing,
                                        reverts__flag_status_before__in=open_before))
    raised = per_day(Flag.objects.filter(queue=queue))
    n = queue_flags(queue=queue).count()
    out = []
    for offset in range(days):  # today back to the first day; each row is the count at the day's end
        day = today - timedelta(days=offset)
        out.append({"day": day, "open": max(n, 0)})
        n += closed.get(day, 0) - reopened.get(day, 0) - raised.get(day, 0)
    return out[::-1]


def category_history(product) -> list[dict]:
    """Every category change of a product: who, when, from, to (from pghistory events)."""
    events = list(
        product.category_events.order_by("pgh_id").select_related("pgh_context").values(
            "pgh_created_at", "pgh_label", "category__path", "pgh_context__metadata"
        )
    )
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
