"""Background jobs: a `Job` row a page can read, run by one Celery task per job.

Each kind maps to a service function `fn(*, params, user, progress)` returning a JSON-able
result. The task only loads the job and calls `run_job`; the work lives in services.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from django.db import transaction
from django.utils.module_loading import import_string

from catalog.models import Job

JOB_KINDS: dict[str, str] = {
    "import": "catalog.services.import_job",
    "embed": "catalog.embeddings.embed_job",
    "train": "quantizer.services.train_job",
    "audit": "audit.services.audit_job",
    "pipeline": "audit.pipeline.pipeline_job",
}


class JobFailed(Exception):
    """A job failed for a reason the user can act on; `details` go into the job's result."""

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.details = details or {}


class ProgressReporter:
    """Writes progress to the job row, at most every `interval` seconds (and always at 100%)."""

    def __init__(self, job: Job, interval: float = 0.5):
        self.job, self.interval, self.last = job, interval, 0.0

    def __call__(self, done: float, total: float = 1.0, message: str | None = None) -> None:
        now = time.monotonic()
        fraction = min(max(done / total, 0.0), 1.0) if total else 0.0
        if now - self.last < self.interval and fraction < 1.0:
            return
        self.last = now
        fields = {"progress": fraction}
        if message is not None:
            fields["message"] = message[:500]
        Job.objects.filter(pk=self.job.pk).update(**fields)


def start_job(*, kind: str, params: dict, user=None) -> Job:
    """Create a job and queue it once the surrounding transaction commits."""
    from catalog.tasks import run_job_task

    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}; known: {', '.join(JOB_KINDS)}")
    job = Job.objects.create(kind=kind, params=params, created_by=user)
    run_job_task.delay_on_commit(job.pk)
    return job


def run_job(*, job_id: int, progress_factory: Callable[[Job], Callable] = ProgressReporter) -> Job:
    job = Job.objects.select_related("created_by").get(pk=job_id)
    if job.status in (Job.Status.SUCCEEDED, Job.Status.RUNNING):
        return job  # a redelivered message; the work is done or under way
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, message="started")
    service = import_string(JOB_KINDS[job.kind])
    try:
        result = service(params=job.params, user=job.created_by, progress=progress_factory(job))
    except JobFailed as exc:
        _finish(job, Job.Status.FAILED, str(exc), {"error": str(exc), **exc.details})
    except Exception as exc:  # a crash is reported on the job, and re-raised for the worker log
        _finish(job, Job.Status.FAILED, f"{type(exc).__name__}: {exc}", {"error": traceback.format_exc()[-4000:]})
        raise
    else:
        _finish(job, Job.Status.SUCCEEDED, "done", result or {}, progress=1.0)
    job.refresh_from_db()
    return job


def _finish(job: Job, status: str, message: str, result: dict, progress: float | None = None) -> None:
    fields = {"status": status, "message": message[:500], "result": result}
    if progress is not None:
        fields["progress"] = progress
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(**fields)
