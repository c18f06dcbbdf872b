from celery import shared_task

from catalog.jobs import run_job


@shared_task(acks_late=True)
def run_job_task(job_id: int) -> str:
    return run_job(job_id=job_id).status
