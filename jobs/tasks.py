from celery import shared_task
from celery.signals import worker_ready

from jobs.runner import RUN_JOB_TASK, fail_abandoned_jobs, run_job


@shared_task(name=RUN_JOB_TASK, acks_late=True)
def run_job_task(job_id: int) -> str:
    return run_job(job_id=job_id).status


@worker_ready.connect
def fail_jobs_of_dead_workers(**kwargs) -> None:
    """A worker that starts marks failed the jobs a killed worker left running (after their heartbeat timeout)."""
    fail_abandoned_jobs()
