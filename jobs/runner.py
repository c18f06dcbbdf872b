"""Background jobs: a `Job` row a page can read, run by one Celery task per job.

Each app registers the kinds of job it runs in its `AppConfig.ready()`: a kind names a service
function `fn(*, params, user, progress)` returning a JSON-able result. The task only loads the job
and calls `run_job`; the work lives in the services.

A service may instead return a `Chunked` plan: the job fans out. Its chunks become Celery tasks
(`jobs.run_chunk`, a chord's header) that any worker takes, in parallel over several workers and one
after another on one; the chord's callback (`jobs.finish_chunks`) runs the plan's `finish` once every
chunk has returned. The job row shows chunks done / total; a failed chunk fails the job with its error.
`run_chunks_here` runs the same plan in this process (a command, a flow that is itself one job).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from celery import chord, current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.db.models.functions import Greatest
from django.dispatch import Signal
from django.utils import timezone
from django.utils.module_loading import import_string

from jobs.kinds import JOB_KINDS
from jobs.models import Job, JobChunk

RUN_JOB_TASK = "jobs.run_job"  # the task that starts every job (jobs.tasks.run_job_task), sent by name
RUN_CHUNK_TASK = "jobs.run_chunk"  # one chunk of a chunked job (jobs.tasks.run_chunk_task)
FINISH_CHUNKS_TASK = "jobs.finish_chunks"  # the chord callback that finishes a chunked job

log = logging.getLogger(__name__)

# Sent once for each job found abandoned (its worker died), with the job as `job`: an app whose
# records a job had under way (a training run) marks them failed too.
job_abandoned = Signal()


def queue_for(kind: str) -> str:
    default = current_app.conf.task_default_queue
    return f"{default}-short" if JOB_KINDS[kind].short else default


@dataclass(frozen=True)
class Chunked:
    """What a service returns when its job fans out: its work split into chunks, each run by its own task.

    Every function is named by dotted path (the tasks import it on the worker) and everything is JSON:
    - `run_chunk(*, params, state, chunk, progress) -> dict`: one chunk's work and its result. It must be
      idempotent (a redelivered message, a retried job): it replaces what it writes.
    - `finish(*, params, state, results, progress) -> dict`: the job's result from the chunks' results (in
      chunk order), once all have succeeded (an index built once, totals).
    - `cleanup(*, params, state)` (optional, idempotent): once the chunks of a failed job are over, undo
      what the plan set up for them (a dropped index).
    `state` carries the plan's decisions to every chunk and to `finish`. A retried job is a new job that
    plans again: a service that can tell what is done (embedding: the text hashes) plans only the rest.
    """

    chunks: list[dict]
    run_chunk: str
    finish: str
    cleanup: str | None = None
    state: dict = field(default_factory=dict)


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
    """A progress callback drawn on a tqdm bar of total 100: a command's view of a job's service. Every
    progress callback in semid takes `(done, total=1.0, message=None)` (an epoch hook, `on_epoch`, is not one)."""

    def __init__(self, bar):
        self.bar = bar

    def __call__(self, done: float, total: float = 1.0, message: str | None = None) -> None:
        self.bar.n = int(100 * done / total) if total else 0
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
    fanned_out = False
    try:
        with heartbeat(job):
            progress = progress_factory(job)
            result = service(params=job.params, user=job.created_by, progress=progress)
            if isinstance(result, Chunked) and result.chunks:
                _fan_out(job, result)  # the job stays running: the chord's callback finishes it
                fanned_out = True
            elif isinstance(result, Chunked):  # nothing to split: finish here
                result = import_string(result.finish)(params=job.params, state=result.state, results=[],
                                                      progress=progress)
    except JobFailed as exc:
        _finish(job, Job.Status.FAILED, str(exc), {"error": str(exc), **exc.details})
    except Exception as exc:  # a crash is reported on the job, and re-raised for the worker log
        _finish(job, Job.Status.FAILED, f"{type(exc).__name__}: {exc}", {"error": traceback.format_exc()[-4000:]})
        raise
    else:
        if not fanned_out:
            _finish(job, Job.Status.SUCCEEDED, "done", result or {}, progress=1.0)
    job.refresh_from_db()
    return job


# --- chunked jobs ----------------------------------------------------------------------------


def _fan_out(job: Job, plan: Chunked) -> None:
    """Store the chunks and the plan on the job, then (after the commit) send the chord: one task per
    chunk on the job's queue, and the callback that finishes the job once all have returned."""
    total = len(plan.chunks)
    with transaction.atomic():
        JobChunk.objects.bulk_create([JobChunk(job=job, index=i, params=chunk) for i, chunk in enumerate(plan.chunks)])
        Job.objects.filter(pk=job.pk).update(
            chunks_total=total, chunks_done=0, awaiting_chunks=True, progress=0.0,
            plan={"run_chunk": plan.run_chunk, "finish": plan.finish, "cleanup": plan.cleanup, "state": plan.state},
            message=f"0 of {total} chunks done", updated_at=timezone.now())
        queue = queue_for(job.kind)

        def send():
            header = [current_app.signature(RUN_CHUNK_TASK, (job.pk, i), queue=queue, immutable=True)
                      for i in range(total)]
            chord(header)(current_app.signature(FINISH_CHUNKS_TASK, (job.pk,), queue=queue, immutable=True))

        transaction.on_commit(send)


def _chunks_fraction(job: Job) -> float:
    """The job's progress: its chunks' progress summed, over chunks + 1 (the finishing step counts as one)."""
    done = JobChunk.objects.filter(job=job).aggregate(s=Sum("progress"))["s"] or 0.0
    return min(done / (job.chunks_total + 1), 1.0)


class ChunkProgress:
    """A chunk's progress on its row and, summed over the chunks, on its job's (never backwards); a message
    becomes the job's (chunks running at once take turns on it)."""

    def __init__(self, chunk: JobChunk, interval: float = 1.0):
        self.chunk, self.interval, self.last = chunk, interval, 0.0

    def __call__(self, done: float, total: float = 1.0, message: str | None = None) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        fraction = min(max(done / total, 0.0), 1.0) if total else 0.0
        JobChunk.objects.filter(pk=self.chunk.pk, status=JobChunk.Status.RUNNING).update(
            progress=fraction, updated_at=timezone.now())
        job = self.chunk.job
        fields = {"message": message[:500]} if message else {}
        Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
            progress=Greatest("progress", _chunks_fraction(job)), updated_at=timezone.now(), **fields)


def run_chunk(*, job_id: int, index: int, worker: str = "") -> str:
    """Run chunk `index` of job `job_id` (the task `jobs.run_chunk`); returns the chunk's status. A chunk
    already done, one under way elsewhere, or one of a job that failed meanwhile is left as it is."""
    fail_abandoned_jobs()
    with transaction.atomic():
        chunk = JobChunk.objects.select_for_update(of=("self",)).select_related("job").get(job_id=job_id, index=index)
        job = chunk.job
        if chunk.status != JobChunk.Status.QUEUED or job.status != Job.Status.RUNNING:
            return chunk.status
        JobChunk.objects.filter(pk=chunk.pk).update(status=JobChunk.Status.RUNNING, worker=worker[:200],
                                                    updated_at=timezone.now())
    chunk.status = JobChunk.Status.RUNNING
    run = import_string(job.plan["run_chunk"])
    try:
        with heartbeat(job, chunk=chunk):
            result = run(params=job.params, state=job.plan["state"], chunk=chunk.params, progress=ChunkProgress(chunk))
    except Exception as exc:  # the job fails with this chunk's error; the chord's callback still runs (cleanup)
        log.exception("chunk %s of job #%s failed", index, job_id)
        details = exc.details if isinstance(exc, JobFailed) else {"error": traceback.format_exc()[-4000:]}
        error = str(exc) if isinstance(exc, JobFailed) else f"{type(exc).__name__}: {exc}"
        with transaction.atomic():
            JobChunk.objects.filter(pk=chunk.pk).update(
                status=JobChunk.Status.FAILED, result={"error": error, **details}, updated_at=timezone.now())
            Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
                status=Job.Status.FAILED, message=f"chunk {index + 1} of {job.chunks_total}: {error}"[:500],
                result={"error": error, **details, "chunk": index}, updated_at=timezone.now())
        return JobChunk.Status.FAILED
    with transaction.atomic():  # the job row locked: concurrent chunks count one after another
        job = Job.objects.select_for_update().get(pk=job_id)
        JobChunk.objects.filter(pk=chunk.pk).update(status=JobChunk.Status.SUCCEEDED, progress=1.0, result=result or {},
                                                    updated_at=timezone.now())
        fields = {"chunks_done": job.chunks_done + 1, "updated_at": timezone.now()}
        if job.status == Job.Status.RUNNING:
            fields.update(progress=max(job.progress, _chunks_fraction(job)),
                          message=f"{job.chunks_done + 1} of {job.chunks_total} chunks done")
        Job.objects.filter(pk=job.pk).update(**fields)
    return JobChunk.Status.SUCCEEDED


def finish_chunks(*, job_id: int) -> str:
    """The chord's callback, once every chunk task has returned: the plan's `finish` (all chunks succeeded)
    or its `cleanup` (the job failed). A redelivered callback of a finished job does nothing."""
    with transaction.atomic():
        job = Job.objects.select_for_update(of=("self",)).get(pk=job_id)
        if job.status == Job.Status.FAILED:
            step = "cleanup"
        elif job.status == Job.Status.RUNNING and job.awaiting_chunks:
            step = "finish"
            Job.objects.filter(pk=job.pk).update(awaiting_chunks=False, message="finishing", updated_at=timezone.now())
        else:
            return job.status
    if step == "cleanup":
        _cleanup(job)
        return job.status
    undone = job.chunks.exclude(status=JobChunk.Status.SUCCEEDED).count()
    if undone:  # cannot happen through the chord; a guard against finishing on missing results
        _finish(job, Job.Status.FAILED, f"{undone} of {job.chunks_total} chunks did not finish; retry the job",
                {"error": "chunks did not finish"})
        _cleanup(job)
        return Job.Status.FAILED
    results = [chunk.result for chunk in job.chunks.order_by("index")]
    reporter = ProgressReporter(job)
    total = job.chunks_total

    def progress(done: float, of: float = 1.0, message: str | None = None) -> None:
        reporter(total + (done / of if of else 0.0), total + 1, message)

    try:
        with heartbeat(job):
            result = import_string(job.plan["finish"])(params=job.params, state=job.plan["state"], results=results,
                                                       progress=progress)
    except Exception as exc:
        log.exception("finishing job #%s failed", job_id)
        _finish(job, Job.Status.FAILED, f"{type(exc).__name__}: {exc}", {"error": traceback.format_exc()[-4000:]})
        _cleanup(job)
        return Job.Status.FAILED
    _finish(job, Job.Status.SUCCEEDED, "done", result or {}, progress=1.0)
    return Job.Status.SUCCEEDED


def _cleanup(job: Job) -> None:
    if (job.plan or {}).get("cleanup"):
        import_string(job.plan["cleanup"])(params=job.params, state=job.plan["state"])


def run_chunks_here(plan: Chunked, *, params: dict, progress: Callable | None = None) -> dict:
    """The same plan in this process, chunk after chunk (a command without a worker, a flow that is itself
    one job): the same functions, so the same result as the workers'; `cleanup` runs if anything fails."""
    total = len(plan.chunks)
    run = import_string(plan.run_chunk)
    with cleaned_up_on_failure(plan, params):
        results = [run(params=params, state=plan.state, chunk=chunk,
                       progress=chunk_progress(progress, i, total) if progress else None)
                   for i, chunk in enumerate(plan.chunks)]
    return run_finish_here(plan, params=params, results=results, progress=progress)


def run_finish_here(plan: Chunked, *, params: dict, results: list, progress: Callable | None = None) -> dict:
    """The plan's `finish` over its chunks' results, in this process (`cleanup` if it fails)."""
    total = len(plan.chunks)
    with cleaned_up_on_failure(plan, params):
        result = import_string(plan.finish)(params=params, state=plan.state, results=results,
                                            progress=chunk_progress(progress, total, total) if progress else None)
    if progress:
        progress(1.0)
    return result


@contextmanager
def cleaned_up_on_failure(plan: Chunked, params: dict):
    """The plan's `cleanup`, if it has one, when the block fails; the error goes on."""
    try:
        yield
    except BaseException:
        if plan.cleanup:
            import_string(plan.cleanup)(params=params, state=plan.state)
        raise


def chunk_progress(progress: Callable, i: int, total: int) -> Callable:
    """Chunk i's progress (done of `of`) as the plan's: each of the `total` chunks and the finish an equal
    share."""
    return lambda done, of=1.0, message=None: progress((i + (done / of if of else 0.0)) / (total + 1), 1.0, message)


@contextmanager
def heartbeat(job: Job, chunk: JobChunk | None = None):
    """While the block runs, a thread touches the job's `updated_at` (and the chunk's, for a chunk) every
    SEMID_JOB_HEARTBEAT_SECONDS, so a job whose worker died (no heartbeat) can be told from a long step
    that reports no progress."""
    stop = threading.Event()

    def beat():
        try:
            while not stop.wait(settings.SEMID_JOB_HEARTBEAT_SECONDS):
                if chunk is not None:
                    JobChunk.objects.filter(pk=chunk.pk, status=JobChunk.Status.RUNNING).update(
                        updated_at=timezone.now())
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
    killed or ran out of memory), send `job_abandoned` for each and run a fanned-out one's `cleanup` (its
    plan's files go). Pages and workers call it, so a
    dead job reads as failed within about a minute and can be retried. A chunked job waiting on its chunks
    has no heartbeat of its own (its chunks may wait in the queue behind other work): it is abandoned when
    one of its running chunks has none."""
    cutoff = timezone.now() - timedelta(seconds=settings.SEMID_JOB_STALE_SECONDS)
    dead_chunks = JobChunk.objects.filter(status=JobChunk.Status.RUNNING, updated_at__lt=cutoff)
    abandoned = []
    with transaction.atomic():
        for job in Job.objects.select_for_update(skip_locked=True).filter(
                Q(awaiting_chunks=False, updated_at__lt=cutoff)
                | Q(awaiting_chunks=True, pk__in=dead_chunks.values("job_id")),
                status=Job.Status.RUNNING):
            dead_chunks.filter(job=job).update(status=JobChunk.Status.FAILED, updated_at=timezone.now())
            message = (f"the worker stopped during this job (no heartbeat for {settings.SEMID_JOB_STALE_SECONDS:g} s);"
                       " retry it")
            Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, message=message,
                                                 result={**job.result, "error": message}, updated_at=timezone.now())
            abandoned.append(job)
        for job in abandoned:
            job_abandoned.send(sender=Job, job=job)
    for job in abandoned:  # a fanned-out job's plan undoes what it left (its files): the chord may never finish
        try:
            _cleanup(job)
        except Exception:
            log.exception("cleaning up abandoned job #%s failed", job.pk)
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
