"""Until the first flags exist, every page says the review queues are being built, with the progress."""

from __future__ import annotations

from audit.models import Flag
from jobs.models import Job

BUILDING_KINDS = ("pipeline", "embed", "train", "audit")


def building_job() -> Job | None:
    """The oldest unfinished job that builds the queues, while no flag exists yet."""
    if Flag.objects.exists():
        return None
    return (Job.objects.filter(kind__in=BUILDING_KINDS, status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
            .order_by("created_at").first())


def queues_being_built(request) -> dict:
    if not request.user.is_authenticated:
        return {}
    return {"building_job": building_job()}
