"""Background jobs: a `Job` row a page can read, run by one Celery task per job.

Each app registers the kinds of job it runs in its `AppConfig.ready()`: a kind names a service
function `fn(*, params, user, progress)` returning a JSON-able result. The task only loads the job
and calls `run_job`; the work lives in the services.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.dispatch import Signal
from django.utils import timezone
from django.utils.module_loading import import_string

from jobs.models import Job

RUN_JOB_TASK = "jobs.run_job"  # the one Celery task (jobs.tasks.run_job_task), sent by name

# Sent once for each job found abandoned (its worker died), with the job as `job`: an app whose
# records a job had under way (a training run) marks them failed too.
job_abandoned = Signal()


@dataclass(frozen=True)
class JobKind:
    service: str  # dotted path of `fn(*, params, user, progress) -> dict`, imported when a job runs
    short: bool = False  # user-facing and quick: runs on the "<default queue>-short" queue (its own worker)


JOB_KINDS: dict[str, JobKind] = {}


def register_job_kind(kind: str, service: str, *, short: bool = False) -> None:
    """Called from an app's `ready()`. Short kinds (an upload's import) never wait behind a training
    run or an audit."""
    JOB_KINDS[kind] = JobKind(service=service, short=short)


def queue_for(kind: str) -> str:
    default = current_app.conf.task_default_queue
    return f"{default}-short" if JOB_KINDS[kind].short else default


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
        fields = {"progress": fraction, "updated_at": timezone.now()}
        if message is not None:
            fields["message"] = message[:500]
        Job.objects.filter(pk=self.job.pk).update(**fields)


class BarProgress:
    """The same progress signature drawn on a tqdm bar of total 100: a command's view of a job's service."""

    def __init__(self, bar):
        self.bar = bar

    def __call__(self, done: float, total: float = 1.0, message: str | None = None) -> None:
        self.bar.n = int(100 * done / total)
        if message:
            self.bar.set_postfix_str(message)
        self.bar.refresh()


def start_job(*, kind: str, params: dict, user=None) -> Job:
    """Create a job and queue it once the surrounding transaction commits."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}; known: {', '.join(sorted(JOB_KINDS))}")
    job = Job.objects.create(kind=kind, params=params, created_by=user)
    queue = queue_for(kind)
    transaction.on_commit(lambda: current_app.send_task(RUN_JOB_TASK, (job.pk,), queue=queue))
    return job


def run_job(*, job_id: int, progress_factory: Callable[[Job], Callable] = ProgressReporter) -> Job:
    fail_abandoned_jobs()
    with transaction.atomic():
        job = Job.objects.select_for_update(of=("self",)).select_related("created_by").get(pk=job_id)
        if job.status != Job.Status.QUEUED:
            return job  # a redelivered message: done, failed (retry makes a new job) or under way elsewhere
        Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, message="started", updated_at=timezone.now())
    service = import_string(JOB_KINDS[job.kind].service)
    try:
        with heartbeat(job):
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


@contextmanager
def heartbeat(job: Job):
    """While the block runs, a thread touches the job's `updated_at` every SEMID_JOB_HEARTBEAT_SECONDS,
    so a job whose worker died (no heartbeat) can be told from a long step that reports no progress."""
    stop = threading.Event()

    def beat():
        try:
            while not stop.wait(settings.SEMID_JOB_HEARTBEAT_SECONDS):
                Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(updated_at=timezone.now())
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"job-{job.pk}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_abandoned_jobs() -> list[Job]:
    """Mark failed every running job without a heartbeat for SEMID_JOB_STALE_SECONDS (its worker was
    killed or ran out of memory) and send `job_abandoned` for each. Pages and workers call it, so a
    dead job reads as failed within about a minute and can be retried."""
    cutoff = timezone.now() - timedelta(seconds=settings.SEMID_JOB_STALE_SECONDS)
    abandoned = []
    with transaction.atomic():
        for job in Job.objects.select_for_update(skip_locked=True).filter(status=Job.Status.RUNNING,
                                                                          updated_at__lt=cutoff):
            message = (f"the worker stopped during this job (no heartbeat for {settings.SEMID_JOB_STALE_SECONDS:g} s);"
                       " retry it")
            Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, message=message,
                                                 result={**job.result, "error": message}, updated_at=timezone.now())
            abandoned.append(job)
        for job in abandoned:
            job_abandoned.send(sender=Job, job=job)
    return abandoned


def retry_job(*, job: Job, user=None) -> Job:
    """Queue a failed job again as a new job (same kind and parameters); the failed one stays in the history."""
    if job.status != Job.Status.FAILED:
        raise ValueError(f"job #{job.pk} is {job.status}: only a failed job can be retried")
    return start_job(kind=job.kind, params={**job.params, "retry_of": job.pk}, user=user or job.created_by)


def _finish(job: Job, status: str, message: str, result: dict, progress: float | None = None) -> None:
    fields = {"status": status, "message": message[:500], "result": result, "updated_at": timezone.now()}
    if progress is not None:
        fields["progress"] = progress
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(**fields)
