"""The audit job fanned out (audit.runs.audit_plan): each fold classifier of the catalog's labels and of the
calibration copy's is a chunk that any worker takes; the finish gives the flags and scores of the audit in one
process (run_audit), and the plan's folder under SEMID_HOME goes once the job is over, finished or failed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from audit.models import AuditReport, Flag, Score
from audit.runs import AUDIT_FITS, audit_plan, run_audit
from catalog.demo import generate_demo_catalog, write_csv
from catalog.embeddings import embed_products
from catalog.services import import_catalog
from jobs.models import Job, JobChunk
from jobs.runner import run_chunks_here, start_job
from quantizer.services import create_run, train_run
from tests.conftest import wait_for

FAST = {"epochs": 10}


def coded(tmp_path, n_products: int = 400):
    write_csv(generate_demo_catalog(n_products=n_products, seed=5, mislabel_rate=0.05), tmp_path / "demo.csv")
    import_catalog(path=tmp_path / "demo.csv")
    embed_products(flavor="precision")
    return train_run(run=create_run(flavor="precision", overrides=FAST))


def outcome(run) -> tuple[dict, dict]:
    """Each product's score (suggestion, confidence, raw score, flagged) and each flag (queue, suggestion,
    confidence, priority, evidence) of the run."""
    scores = {pk: (suggested, round(confidence, 9), round(raw, 9), flagged) for pk, suggested, confidence, raw, flagged
              in Score.objects.filter(run=run).values_list("product_id", "suggested_id", "confidence", "raw_score",
                                                           "flagged")}
    flags = {pk: (queue, suggested, round(confidence, 9), round(priority, 9), evidence) for
             pk, queue, suggested, confidence, priority, evidence in Flag.objects.filter(run=run).values_list(
                 "product_id", "queue", "suggested_id", "confidence", "priority", "evidence")}
    return scores, flags


def forget_audit(run) -> None:
    Flag.objects.filter(run=run).delete()
    Score.objects.filter(run=run).delete()
    AuditReport.objects.filter(run=run).delete()


def fits_folders() -> list[Path]:
    root = Path(settings.SEMID_HOME) / AUDIT_FITS
    return sorted(root.glob("*")) if root.exists() else []


@pytest.mark.django_db
def test_the_planned_audit_gives_the_flags_and_scores_of_one_process(tmp_path):
    run = coded(tmp_path)
    run_audit(run=run)
    one_process = outcome(run)
    forget_audit(run)
    before = fits_folders()

    plan = audit_plan(run)
    folder = Path(plan.state["folder"])
    assert folder.parent == Path(settings.SEMID_HOME) / AUDIT_FITS and folder.is_dir()
    # the catalog's classifier (10 folds: 400 products) and brand_out (5), the same for the calibration copy
    assert [(c["copy"], c["signal"]) for c in plan.chunks].count((False, "classifier")) == 10
    assert [(c["copy"], c["signal"]) for c in plan.chunks].count((True, "brand_out")) == 5
    assert len(plan.chunks) == 30
    result = run_chunks_here(plan, params={})

    assert outcome(run) == one_process
    assert len(one_process[0]) == 400 and len(one_process[1]) == result["flagged"] > 0
    assert result["report"] == AuditReport.objects.get(run=run).pk
    assert not folder.exists() and not set(fits_folders()) - set(before)  # (a plan may sweep old ones)


@pytest.mark.django_db
def test_where_the_job_does_not_fan_out_it_audits_in_one_process(tmp_path, monkeypatch):
    """On a GPU (no device in FAN_OUT_DEVICES) the audit job is `run_audit` itself: no chunks, no folder."""
    import audit.runs

    run = coded(tmp_path)
    run_audit(run=run)
    one_process = outcome(run)
    forget_audit(run)
    before = fits_folders()
    monkeypatch.setattr(audit.runs, "FAN_OUT_DEVICES", ())

    result = audit.runs.audit_job(params={"run_id": run.pk})

    assert isinstance(result, dict) and result["report"] == AuditReport.objects.get(run=run).pk
    assert outcome(run) == one_process and result["flagged"] == len(one_process[1]) > 0
    assert fits_folders() == before


@pytest.mark.django_db
def test_a_catalog_without_brands_has_no_brand_out_folds_and_the_same_flags(tmp_path):
    from catalog.models import Product

    run = coded(tmp_path, n_products=200)
    Product.objects.update(brand="")
    run_audit(run=run)
    one_process = outcome(run)
    forget_audit(run)

    plan = audit_plan(run)
    assert {c["signal"] for c in plan.chunks} == {"classifier"} and len(plan.chunks) == 2 * 10
    run_chunks_here(plan, params={})
    assert outcome(run) == one_process and len(one_process[0]) == 200


@pytest.mark.django_db
def test_a_failed_chunk_fails_the_audit_and_its_folder_goes(tmp_path):
    run = coded(tmp_path, n_products=200)
    plan = audit_plan(run)
    folder = Path(plan.state["folder"])
    np.save(folder / "labels-copy.npy", np.zeros(3, np.int64))  # the copy's folds cannot read these

    with pytest.raises(IndexError):
        run_chunks_here(plan, params={})
    assert not folder.exists()
    assert not AuditReport.objects.filter(run=run).exists() and not Score.objects.filter(run=run).exists()



def test_the_audit_job_over_two_workers_gives_the_flags_and_scores_of_one_process(tmp_path, second_worker):
    run = coded(tmp_path)
    before = fits_folders()
    job = start_job(kind="audit", params={"run_id": run.pk})
    job = wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).first(), timeout=600)

    assert job.status == "succeeded", (job.message, job.result)
    assert (job.chunks_total, job.chunks_done, job.progress) == (30, 30, 1.0)
    assert len(set(JobChunk.objects.filter(job=job).values_list("worker", flat=True))) == 2  # both took folds
    assert job.result["report"] == AuditReport.objects.get(run=run).pk and job.result["run"] == run.pk
    fanned_out = outcome(run)
    assert not set(fits_folders()) - set(before)

    forget_audit(run)
    run_audit(run=run)
    assert outcome(run) == fanned_out and len(fanned_out[0]) == 400 and len(fanned_out[1]) > 0


def test_a_chunks_inputs_are_the_vectors_and_text_features_stacked_block_by_block(tmp_path):
    from audit.runs import _classifier_inputs

    rng = np.random.default_rng(0)
    vectors, lexical = rng.random((10, 4), dtype=np.float32), rng.random((10, 3), dtype=np.float32)
    np.save(tmp_path / "vectors.npy", vectors)
    assert np.array_equal(_classifier_inputs(tmp_path, block=3), vectors)
    np.save(tmp_path / "lexical.npy", lexical)
    inputs = _classifier_inputs(tmp_path, block=3)
    assert inputs.dtype == np.float32 and np.array_equal(inputs, np.hstack([vectors, lexical]))


@pytest.mark.django_db
def test_a_plan_sweeps_only_old_folders_that_no_running_audit_holds(tmp_path, settings):
    from jobs.folders import ORPHANED_AGE, sweep_folders

    settings.SEMID_HOME = tmp_path
    root = tmp_path / AUDIT_FITS
    old = (ORPHANED_AGE + ORPHANED_AGE).total_seconds()
    names = ("run-1-orphaned", "run-2-held", "run-3-young", "run-4-done")
    orphaned, held, young, done = (root / name for name in names)
    for folder in (orphaned, held, young, done):
        folder.mkdir(parents=True)
        np.save(folder / "ids.npy", np.arange(3))
    for folder in (orphaned, held, done):
        stamp = folder.stat().st_mtime - old
        os.utime(folder, (stamp, stamp))
    Job.objects.create(kind="audit", status=Job.Status.RUNNING, plan={"state": {"folder": str(held)}})
    Job.objects.create(kind="audit", status=Job.Status.FAILED, plan={"state": {"folder": str(done)}})

    # a running job of another kind does not hold an audit's folder
    Job.objects.create(kind="train", status=Job.Status.RUNNING, plan={"state": {"folder": str(orphaned)}})

    assert sorted(sweep_folders(AUDIT_FITS, kind="audit")) == [orphaned, done]
    assert sorted(root.iterdir()) == [held, young]
