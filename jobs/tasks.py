from celery import shared_task
from celery.signals import worker_ready

from jobs.runner import (FINISH_CHUNKS_TASK, RUN_CHUNK_TASK, RUN_JOB_TASK, fail_abandoned_jobs, finish_chunks,
                         run_chunk, run_job)


@shared_task(name=RUN_JOB_TASK, acks_late=True)
def run_job_task(job_id: int) -> str:
    return run_job(job_id=job_id).status


@shared_task(name=RUN_CHUNK_TASK, acks_late=True, bind=True)
def run_chunk_task(self, job_id: int, index: int) -> str:
    return run_chunk(job_id=job_id, index=index, worker=self.request.hostname or "")


@shared_task(name=FINISH_CHUNKS_TASK, acks_late=True)
def finish_chunks_task(job_id: int) -> str:
    return finish_chunks(job_id=job_id)


@worker_ready.connect
def fail_jobs_of_dead_workers(**kwargs) -> None:
    """A worker that starts marks failed the jobs a killed worker left running (after their heartbeat timeout)."""
    fail_abandoned_jobs()
