"""The pipeline job fanned out by flavor (pipeline.services.pipeline_plan): two real workers take the two
flavors at once, and the codes and flags are those of the pipeline run in one process."""

from __future__ import annotations


import pytest
from django.db import connection

from audit.models import Flag, Score
from audit.runs import run_audit
from catalog.demo import generate_demo_catalog, write_csv
from catalog.services import import_catalog
from jobs.models import Job, JobChunk
from jobs.runner import start_job
from pipeline.services import run_pipeline
from quantizer.models import QuantizerRun, SemanticId
from tests.conftest import wait_for

FAST = {"epochs": 10}


@pytest.fixture
def demo(tmp_path, worker):
    write_csv(generate_demo_catalog(n_products=600, seed=3, mislabel_rate=0.04), tmp_path / "demo.csv")
    import_catalog(path=tmp_path / "demo.csv")



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


def test_the_pipeline_builds_the_index_beside_training_and_writes_the_codes_beside_the_audit(
        tmp_path, transactional_db, monkeypatch):
    """A first load drops the flavor's HNSW index; the pipeline's chunk builds it on a thread beside training
    (catalog.embeddings.index_built_beside), and it is there when the chunk ends. The audit's texts are counted
    once, on a thread beside training (audit.runs.audit_texts), and the audit takes them as they are. The run's
    codes, then their clusters (every level rebuilt, side by side) are written on a thread while the run is audited
    on the codes in memory (quantizer.services.store_codes); then it is evaluated and becomes active, its clusters
    current and its scores and flags the same as an audit that reads the stored codes."""
    import threading

    import audit.runs as audit_runs
    import catalog.embeddings as embeddings
    import pipeline.services as pipeline_services
    import quantizer.clusters as clusters
    import quantizer.services as quantizer_services
    from tests.quantizer.test_cluster_summaries import assert_current

    write_csv(generate_demo_catalog(n_products=300, seed=3, mislabel_rate=0.04), tmp_path / "demo.csv")
    import_catalog(path=tmp_path / "demo.csv")
    monkeypatch.setattr(embeddings, "REBUILD_INDEX_ABOVE", 2)
    events = []
    ensure, train = embeddings._ensure_index, quantizer_services.train_rqvae
    write, rebuild, audit, metrics = (quantizer_services.write_codes, quantizer_services.rebuild_cluster_summaries,
                                      pipeline_services.run_audit, quantizer_services.run_metrics)
    here = threading.current_thread().name

    def spy(what, work, detail=lambda *a, **k: None):
        def spied(*args, **kwargs):
            events.append((what, threading.current_thread().name, detail(*args, **kwargs)))
            return work(*args, **kwargs)
        return spied

    monkeypatch.setattr(embeddings, "_ensure_index", spy("build", ensure))
    monkeypatch.setattr(clusters, "_rebuild_level", spy("level", clusters._rebuild_level, lambda run, level: level))
    monkeypatch.setattr(audit_runs, "text_terms", spy("count", audit_runs.text_terms, lambda words: len(words)))
    monkeypatch.setattr(quantizer_services, "train_rqvae", spy("train", train))
    monkeypatch.setattr(quantizer_services, "write_codes", spy("write", write, lambda **k: k["summary_levels"]))
    monkeypatch.setattr(quantizer_services, "rebuild_cluster_summaries",
                        spy("summaries", rebuild, lambda *, run, first_level: first_level))
    monkeypatch.setattr(quantizer_services, "run_metrics", spy("metrics", metrics))
    monkeypatch.setattr(pipeline_services, "run_audit",
                        spy("audit", audit, lambda *, run, **k: QuantizerRun.objects.get(pk=run.pk).is_active))

    report = run_pipeline(flavors=["precision"], seed=0, overrides=FAST)

    assert report["precision"]["embedded"] == 300
    builds = [name for what, name, _ in events if what == "build"]
    assert len(builds) == 1 and builds[0].startswith("index-build")
    assert ("train", here, None) in events
    counts = [(name.split("_")[0], n) for what, name, n in events if what == "count"]
    assert counts == [("audit-texts", 300)]
    written = [(what, name.split("_")[0], detail) for what, name, detail in events if what in ("write", "summaries")]
    assert written == [("write", "codes", 0), ("summaries", "codes", 1)]  # every level rebuilt after the write
    levels = sorted((level, name.split("_")[0]) for what, name, level in events if what == "level")
    assert levels == [(level, f"summaries-{level}") for level in range(1, 5)]  # side by side, a thread each
    assert ("audit", here, False) in events  # audited before it was made active
    # evaluated on this thread once the audit is done: torch's TF32 switch, which the audit's classifiers turn on,
    # is process-wide, and the metrics' neighbours are exact float32
    assert [(what, name) for what, name, _ in events if what in ("audit", "metrics")] == [
        ("audit", here), ("metrics", here)]
    run = QuantizerRun.objects.get(pk=report["precision"]["run"])
    assert (run.status, run.message, run.is_active) == (QuantizerRun.Status.SUCCEEDED, "done", True)
    assert_current(run)
    assert run.metrics.get("spearman") is not None
    audited = outcome()
    run_audit(run=run)  # the same audit on the stored codes
    assert outcome() == audited and len(audited[1]) == 300
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'embedding_hnsw_precision'")
        assert cursor.fetchone() is not None
