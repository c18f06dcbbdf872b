"""The pipeline job fanned out by flavor (pipeline.services.pipeline_plan): two real workers take the two
flavors at once, and the codes and flags are those of the pipeline run in one process."""

from __future__ import annotations

import os

import pytest
from django.db import connection

from audit.models import Flag, Score
from catalog.demo import generate_demo_catalog, write_csv
from catalog.services import import_catalog
from jobs.models import Job, JobChunk
from jobs.runner import start_job
from pipeline.services import run_pipeline
from quantizer.models import QuantizerRun, SemanticId
from tests.conftest import ARTIFACTS, spawn_worker, stop_worker, wait_for

FAST = {"epochs": 10}


@pytest.fixture
def demo(tmp_path, worker):
    write_csv(generate_demo_catalog(n_products=600, seed=3, mislabel_rate=0.04), tmp_path / "demo.csv")
    import_catalog(path=tmp_path / "demo.csv")


@pytest.fixture
def second_worker(worker):
    """Another real worker on the session worker's queue: the two share the chunks."""
    from config.celery import app

    proc = spawn_worker(app.conf.task_default_queue, f"second-{os.getpid()}", ARTIFACTS / "celery-second.log")
    yield proc
    stop_worker(proc)


def outcome() -> tuple[dict, dict, dict]:
    """What the active runs give each product, by (flavor, product): its code, its score (suggestion, confidence,
    flagged) and, where flagged, the flag's view (a flavor's view whether it raised the product's flag or joined
    the other flavor's)."""
    codes = {(flavor, pk): code for flavor, pk, code in SemanticId.objects.filter(run__is_active=True)
             .values_list("run__flavor", "product_id", "code")}
    scores = {(flavor, pk): (suggested, round(confidence, 6), flagged) for flavor, pk, suggested, confidence, flagged
              in Score.objects.filter(run__is_active=True).values_list("run__flavor", "product_id", "suggested_id",
                                                                       "confidence", "flagged")}
    views = {}
    for flag in Flag.objects.filter(status__in=Flag.LIVE_STATES).select_related("run", "suggested"):
        assert (flag.run.flavor, flag.product_id) not in views
        views[(flag.run.flavor, flag.product_id)] = (flag.suggested.path if flag.suggested else "",
                                                     round(flag.confidence, 4))
        for flavor, view in (flag.evidence.get("flavors") or {}).items():
            views[(flavor, flag.product_id)] = (view["suggested"], round(view["confidence"], 4))
    return codes, scores, views


def test_the_pipeline_over_two_workers_gives_the_codes_and_flags_of_one_process(demo, second_worker):
    job = start_job(kind="pipeline", params={"flavors": ["precision", "discovery"], "seed": 0, "overrides": FAST})
    job = wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).first(), timeout=900)

    assert job.status == "succeeded", (job.message, job.result)
    assert (job.chunks_total, job.chunks_done, job.progress) == (2, 2, 1.0)
    assert set(job.result) == {"precision", "discovery"}
    assert len(set(JobChunk.objects.filter(job=job).values_list("worker", flat=True))) == 2  # a flavor a worker
    live = Flag.objects.filter(status__in=Flag.LIVE_STATES)
    assert live.count() == live.values("product_id").distinct().count()  # one flag a product
    fanned_out = outcome()

    QuantizerRun.objects.all().delete()  # runs, codes, flags and scores: the one-process pipeline starts afresh
    run_pipeline(flavors=["precision", "discovery"], seed=0, overrides=FAST)

    codes, scores, views = outcome()
    assert codes == fanned_out[0] and len(codes) == 2 * 600
    assert scores == fanned_out[1] and len(scores) == 2 * 600
    assert views == fanned_out[2] and len(views) == sum(f for _, _, f in scores.values()) > 0  # measured: 35


def test_the_pipeline_builds_a_dropped_index_while_the_run_trains(tmp_path, transactional_db, monkeypatch):
    """A first load drops the flavor's HNSW index; the pipeline's chunk builds it on a thread beside training
    (catalog.embeddings.index_built_beside), and it is there when the chunk ends."""
    import threading

    import catalog.embeddings as embeddings
    import quantizer.services as quantizer_services

    write_csv(generate_demo_catalog(n_products=300, seed=3, mislabel_rate=0.04), tmp_path / "demo.csv")
    import_catalog(path=tmp_path / "demo.csv")
    monkeypatch.setattr(embeddings, "REBUILD_INDEX_ABOVE", 2)
    events = []
    ensure, train = embeddings._ensure_index, quantizer_services.train_rqvae
    monkeypatch.setattr(embeddings, "_ensure_index",
                        lambda flavor: events.append(("build", threading.current_thread().name)) or ensure(flavor))
    monkeypatch.setattr(quantizer_services, "train_rqvae",
                        lambda *a, **k: events.append(("train", threading.current_thread().name)) or train(*a, **k))

    report = run_pipeline(flavors=["precision"], seed=0, overrides=FAST)

    assert report["precision"]["embedded"] == 300
    builds = [name for what, name in events if what == "build"]
    assert len(builds) == 1 and builds[0].startswith("index-build")
    assert ("train", threading.current_thread().name) in events
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'embedding_hnsw_precision'")
        assert cursor.fetchone() is not None
