"""A worker SIGKILLed mid-training and mid-audit: its job is marked failed once its heartbeat stops,
the active run is untouched, and retrying the job succeeds (real PostgreSQL, Redis and workers)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from audit.models import AuditReport
from catalog.demo import generate_demo_catalog, write_csv
from catalog.embeddings import embed_products
from jobs.runner import fail_abandoned_jobs, retry_job
from jobs.models import Job
from catalog.services import import_catalog
from jobs.tasks import run_job_task
from quantizer.models import QuantizerRun, SemanticId
from quantizer.services import create_run, train_run
from tests.conftest import ARTIFACTS, spawn_worker, wait_for


def run_on_a_worker_then_kill_it(job: Job, when, name: str) -> None:
    """Send `job` to a worker of its own (heartbeat every 0.5 s), SIGKILL it once `when()` holds."""
    queue = f"semid-doomed-{name}-{os.getpid()}"
    proc = spawn_worker(queue, f"{name}-{os.getpid()}", ARTIFACTS / f"celery-{name}.log",
                        SEMID_JOB_HEARTBEAT_SECONDS="0.5")
    try:
        run_job_task.apply_async((job.pk,), queue=queue)
        wait_for(when, timeout=300, interval=0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()


def reap(settings, job: Job) -> Job:
    settings.SEMID_JOB_STALE_SECONDS = 2  # the killed worker's heartbeat was every 0.5 s
    wait_for(lambda: fail_abandoned_jobs() or Job.objects.get(pk=job.pk).status == Job.Status.FAILED, timeout=30)
    settings.SEMID_JOB_STALE_SECONDS = 60  # the live session worker beats every 10 s
    return Job.objects.get(pk=job.pk)


@pytest.fixture
def coded_catalog(tmp_path, worker):
    write_csv(generate_demo_catalog(n_products=300, seed=4), tmp_path / "demo.csv")
    import_catalog(path=tmp_path / "demo.csv")
    embed_products(flavor="precision")
    return train_run(run=create_run(flavor="precision"))


def codes_of(run) -> dict:
    return dict(SemanticId.objects.filter(run=run).values_list("product_id", "code"))


def test_a_worker_killed_mid_training_fails_its_job_keeps_the_active_run_and_the_retry_succeeds(
        coded_catalog, settings):
    active, codes = coded_catalog, codes_of(coded_catalog)
    run = create_run(flavor="precision")
    job = Job.objects.create(kind="train", params={"run_id": run.pk})

    run_on_a_worker_then_kill_it(
        job, lambda: QuantizerRun.objects.filter(pk=run.pk, message__startswith="epoch").exists(), "training")
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING  # nobody says otherwise yet
    job = reap(settings, job)

    assert job.status == Job.Status.FAILED and "worker stopped" in job.message
    assert job.plan["state"]["folder"] and not Path(job.plan["state"]["folder"]).exists()  # the plan's arrays go
    run.refresh_from_db()
    assert run.status == QuantizerRun.Status.FAILED and not run.is_active
    assert QuantizerRun.objects.get(is_active=True, flavor="precision") == active
    assert codes_of(active) == codes

    again = retry_job(job=job)
    again = wait_for(lambda: Job.objects.filter(pk=again.pk, status__in=["succeeded", "failed"]).first(), timeout=300)
    assert again.status == Job.Status.SUCCEEDED, again.result
    assert again.params == {"run_id": run.pk, "retry_of": job.pk}
    run.refresh_from_db()
    assert run.status == QuantizerRun.Status.SUCCEEDED and run.is_active
    assert len(codes_of(run)) == len(codes)


def test_a_worker_killed_mid_audit_fails_its_job_and_the_retry_writes_the_report(coded_catalog, settings):
    active = coded_catalog
    job = Job.objects.create(kind="audit", params={"run_id": active.pk})

    run_on_a_worker_then_kill_it(
        job, lambda: Job.objects.filter(pk=job.pk, message__in=["scoring", "calibrating"]).exists(), "auditing")
    job = reap(settings, job)

    assert job.status == Job.Status.FAILED
    assert not AuditReport.objects.filter(run=active).exists()
    assert QuantizerRun.objects.get(pk=active.pk).is_active
    assert job.plan["state"]["folder"] and not Path(job.plan["state"]["folder"]).exists()  # the plan's arrays go

    again = retry_job(job=job)
    again = wait_for(lambda: Job.objects.filter(pk=again.pk, status__in=["succeeded", "failed"]).first(), timeout=300)
    assert again.status == Job.Status.SUCCEEDED, again.result
    assert AuditReport.objects.filter(run=active).count() == 1


def test_an_import_runs_while_a_training_job_holds_the_heavy_worker(coded_catalog, settings, tmp_path):
    """Imports have a queue and a worker of their own: a long training never makes them wait."""
    from config.celery import app
    from jobs.runner import start_job

    queue = f"semid-busy-{os.getpid()}"
    heavy = spawn_worker(queue, f"heavy-{os.getpid()}", ARTIFACTS / "celery-heavy.log", queues=[queue])
    short = spawn_worker(queue, f"short-{os.getpid()}", ARTIFACTS / "celery-short.log", queues=[f"{queue}-short"])
    default, app.conf.task_default_queue = app.conf.task_default_queue, queue
    try:
        run = create_run(flavor="precision", overrides={"epochs": 5000})  # minutes of training
        training = start_job(kind="train", params={"run_id": run.pk, "activate": False})
        wait_for(lambda: QuantizerRun.objects.filter(pk=run.pk, message__startswith="epoch").exists(), timeout=120)
        path = tmp_path / "more.csv"
        path.write_text("external_id,name,brand,description,category_path\n"
                        f"NEW-1,Oat milk 1 l,Oatly,,{coded_catalog_path()}\n")
        importing = start_job(kind="import", params={"path": str(path)})

        done = wait_for(lambda: Job.objects.filter(pk=importing.pk, status__in=["succeeded", "failed"]).first(),
                        timeout=60)

        assert done.status == "succeeded", done.result
        assert Job.objects.get(pk=training.pk).status == "running"  # the import did not wait for it
    finally:
        app.conf.task_default_queue = default
        for proc in (heavy, short):
            proc.kill()
            proc.wait()
    training = reap(settings, training)  # the killed heavy worker's job fails, and its plan's arrays go with it
    assert training.status == Job.Status.FAILED and not Path(training.plan["state"]["folder"]).exists()


def coded_catalog_path() -> str:
    from catalog.models import Category

    return Category.objects.filter(children__isnull=True, products__isnull=False).first().path
