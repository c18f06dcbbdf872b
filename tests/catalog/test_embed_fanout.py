"""The `embed` job fanned out over real Celery workers (jobs.runner.Chunked): the same vectors as one
process, progress counted by chunk, a failed chunk failing the job, and a retry encoding only the rest."""

from __future__ import annotations


import numpy as np
import pytest
from django.db import connection

from catalog.demo import generate_demo_catalog, write_csv
from catalog.embeddings import embed_products
from catalog.models import Product, ProductEmbedding
from catalog.services import import_catalog
from jobs.models import Job, JobChunk
from jobs.runner import retry_job, start_job
from tests.conftest import wait_for

CHUNK = 30  # products a chunk here: eight or nine chunks of the demo catalog below


@pytest.fixture
def imported(tmp_path, transactional_db):
    """The demo generator's 240 products imported; their ids, ascending."""
    write_csv(generate_demo_catalog(n_products=240, seed=3), tmp_path / "demo.csv")
    import_catalog(path=tmp_path / "demo.csv")
    return sorted(Product.objects.values_list("id", flat=True))


@pytest.fixture
def demo(worker, imported):
    return imported



def finished(job: Job) -> Job:
    return wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).first(), timeout=600)


def stored(flavor: str) -> dict[int, tuple[str, np.ndarray]]:
    return {pk: (text_hash, np.asarray(vector, dtype=np.float32)) for pk, text_hash, vector in
            ProductEmbedding.objects.filter(flavor=flavor).values_list("product_id", "text_hash", "embedding")}


def test_embedding_chunked_over_two_workers_writes_the_same_vectors_as_one_process(demo, second_worker):
    chunks = -(-len(demo) // CHUNK)

    job = finished(start_job(kind="embed", params={"flavors": ["precision"], "chunk_size": CHUNK}))

    assert job.status == "succeeded", (job.message, job.result)
    assert (job.chunks_total, job.chunks_done, job.progress) == (chunks, chunks, 1.0)
    assert job.result["precision"] == {"flavor": "precision", "products": len(demo), "encoded": len(demo),
                                       "unchanged": 0, "index_rebuilt": False}
    ran = JobChunk.objects.filter(job=job)
    assert set(ran.values_list("status", flat=True)) == {"succeeded"}
    assert len(set(ran.values_list("worker", flat=True))) == 2  # both workers took chunks
    chunked = stored("precision")

    ProductEmbedding.objects.all().delete()
    embed_products(flavor="precision")  # one process, the command's path
    alone = stored("precision")

    assert chunked.keys() == alone.keys() == set(demo)
    assert all(chunked[pk][0] == alone[pk][0] for pk in demo)  # text hashes
    difference = max(float(np.abs(chunked[pk][1] - alone[pk][1]).max()) for pk in demo)
    assert difference <= 1e-6, difference  # the same vectors (other batches may round the last bit)

    again = finished(start_job(kind="embed", params={"flavors": ["precision"], "chunk_size": CHUNK}))
    assert again.status == "succeeded" and again.result["precision"]["encoded"] == 0  # nothing changed


def test_a_failed_chunk_fails_the_job_with_its_error_and_the_retry_encodes_only_the_rest(demo):
    """One worker: the chunks run one after another, so the ones before the bad product are written."""
    bad = demo[3 * CHUNK + 5]  # in the fourth chunk
    Product.objects.filter(pk=bad).update(attributes=["not a record"])  # as_record() cannot read it

    job = finished(start_job(kind="embed", params={"flavors": ["precision"], "chunk_size": CHUNK}))

    assert job.status == "failed"
    assert job.message.startswith(f"chunk 4 of {job.chunks_total}: ValueError: dictionary update sequence"), job.message
    assert job.result["chunk"] == 3 and "Traceback" in job.result["error"]
    statuses = list(JobChunk.objects.filter(job=job).order_by("index").values_list("status", flat=True))
    assert statuses == ["succeeded"] * 3 + ["failed"] + ["queued"] * (job.chunks_total - 4)  # the rest skipped
    assert job.chunks_done == 3
    written = ProductEmbedding.objects.filter(flavor="precision").count()
    assert written == 3 * CHUNK

    Product.objects.filter(pk=bad).update(attributes={})
    again = finished(retry_job(job=job))

    assert again.status == "succeeded", (again.message, again.result)
    assert again.params["retry_of"] == job.pk
    assert (again.result["precision"]["encoded"], again.result["precision"]["unchanged"]) == (len(demo) - written,
                                                                                              written)
    assert ProductEmbedding.objects.filter(flavor="precision").count() == len(demo)


def test_an_embedding_that_fails_midway_builds_the_index_it_dropped(tmp_path, db, monkeypatch):
    import catalog.embeddings as embeddings

    write_csv(generate_demo_catalog(n_products=60, seed=5), tmp_path / "demo.csv")
    import_catalog(path=tmp_path / "demo.csv")
    ids = sorted(Product.objects.values_list("id", flat=True))
    Product.objects.filter(pk=ids[-1]).update(attributes=["not a record"])
    monkeypatch.setattr(embeddings, "REBUILD_INDEX_ABOVE", 2)  # the plan drops the index
    monkeypatch.setattr(embeddings, "CHUNK_PRODUCTS", 20)

    with pytest.raises(ValueError, match="dictionary update sequence"):
        embed_products(flavor="precision")

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'catalog_productembedding'")
        assert "embedding_hnsw_precision" in {row[0] for row in cursor.fetchall()}
    assert ProductEmbedding.objects.filter(flavor="precision").count() == 40  # the first two chunks


def backends() -> int:
    """Client connections to this database, this test's included (not autovacuum's workers, which come and go)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND backend_type = 'client backend'")
        return cursor.fetchone()[0]


def backends_back_to(count: int) -> bool:
    """Whether the connections return to `count` within 5 s: a closed connection's server process ends a moment
    after the client closes it (a thread's connection left open never does)."""
    try:
        return wait_for(lambda: backends() == count, timeout=5.0, interval=0.05)
    except AssertionError:
        return False


def test_in_one_process_the_next_chunk_is_read_and_the_last_written_while_one_is_encoded(imported, monkeypatch):
    """Outside a transaction `embed_products` reads and writes chunks on two threads beside the encoder: the
    same vectors, hashes and counts as chunk after chunk, progress rising to 1, the threads' connections closed."""
    import threading

    import catalog.embeddings as embeddings

    ids = imported
    readers = set()
    read = embeddings._read_chunk
    monkeypatch.setattr(embeddings, "_read_chunk", lambda *a: readers.add(threading.current_thread().name) or read(*a))
    before, seen = backends(), []

    overlapped = embed_products(flavor="precision", chunk_size=CHUNK, progress=lambda done, *_: seen.append(done))

    assert readers and all(name.startswith("embed-read") for name in readers)
    assert backends_back_to(before)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > len(ids) // CHUNK
    assert (overlapped.products, overlapped.encoded, overlapped.unchanged) == (len(ids), len(ids), 0)
    with_threads = stored("precision")
    ProductEmbedding.objects.all().delete()
    monkeypatch.setattr(embeddings, "OVERLAP_CHUNKS", False)
    readers.clear()

    one_by_one = embed_products(flavor="precision", chunk_size=CHUNK)

    assert readers == {threading.current_thread().name}
    assert one_by_one == overlapped
    alone = stored("precision")
    assert with_threads.keys() == alone.keys() == set(ids)
    assert all(with_threads[pk][0] == alone[pk][0] for pk in ids)
    assert max(float(np.abs(with_threads[pk][1] - alone[pk][1]).max()) for pk in ids) <= 1e-6


def test_a_chunk_that_fails_in_the_overlapped_path_stops_after_the_chunks_before_it_are_written(
        imported, monkeypatch):
    import catalog.embeddings as embeddings

    ids = imported
    Product.objects.filter(pk=ids[3 * CHUNK + 5]).update(attributes=["not a record"])  # in the fourth chunk
    monkeypatch.setattr(embeddings, "REBUILD_INDEX_ABOVE", 2)  # the plan drops the index
    before = backends()

    with pytest.raises(ValueError, match="dictionary update sequence"):
        embed_products(flavor="precision", chunk_size=CHUNK)

    assert ProductEmbedding.objects.filter(flavor="precision").count() == 3 * CHUNK
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'catalog_productembedding'")
        assert "embedding_hnsw_precision" in {row[0] for row in cursor.fetchall()}  # built again over them
    assert backends_back_to(before)


def test_encoder_processes_write_the_same_vectors_as_encoding_in_this_process(imported, monkeypatch, settings):
    """With SEMID_EMBEDDING_PROCESSES (on a GPU: four by default) a large embedding's chunks are encoded by
    spawned processes, several at once: this process encodes nothing, and the vectors, hashes and counts are the
    same. The processes stop with the embedding."""
    import multiprocessing

    import catalog.embeddings as embeddings

    ids = imported
    settings.SEMID_EMBEDDING_PROCESSES = 0
    here = embed_products(flavor="precision", chunk_size=CHUNK)
    encoded_here = stored("precision")
    ProductEmbedding.objects.all().delete()
    settings.SEMID_EMBEDDING_PROCESSES = 2
    monkeypatch.setattr(embeddings, "ENCODER_PROCESSES_FROM_CHUNKS", len(ids) // CHUNK)  # this plan's chunks
    monkeypatch.setattr(embeddings, "_encode_chunk", lambda *a: pytest.fail("encoded in the embedding's process"))
    seen = []
    elsewhere = embed_products(flavor="precision", chunk_size=CHUNK, progress=lambda done, *_: seen.append(done))

    assert not multiprocessing.active_children()

    assert elsewhere == here and (here.products, here.encoded) == (len(ids), len(ids))
    assert seen == sorted(seen) and seen[-1] == 1.0
    encoded_apart = stored("precision")
    assert encoded_apart.keys() == encoded_here.keys() == set(ids)
    assert all(encoded_apart[pk][0] == encoded_here[pk][0] for pk in ids)
    assert max(float(np.abs(encoded_apart[pk][1] - encoded_here[pk][1]).max()) for pk in ids) <= 1e-6


def test_a_negative_count_of_encoder_processes_is_refused(settings):
    from catalog.embeddings import encoder_process_count

    settings.SEMID_EMBEDDING_PROCESSES = -1
    with pytest.raises(ValueError, match="SEMID_EMBEDDING_PROCESSES must be 0 or more"):
        encoder_process_count()


def test_a_celery_prefork_worker_s_process_may_not_start_encoder_processes():
    """Celery's prefork pool runs tasks in daemonic billiard processes, which may not have children: there the
    embedding encodes in its own process."""
    import billiard

    from catalog.encoder import can_start_processes

    with billiard.get_context("spawn").Pool(1) as pool:
        assert pool.apply(can_start_processes) is False
    assert can_start_processes() is True


def test_where_encoder_processes_may_not_start_the_embedding_encodes_in_its_own_process(
        imported, monkeypatch, settings):
    import multiprocessing

    import catalog.embeddings as embeddings

    settings.SEMID_EMBEDDING_PROCESSES = 2
    monkeypatch.setattr(embeddings, "ENCODER_PROCESSES_FROM_CHUNKS", 2)
    monkeypatch.setattr(embeddings, "can_start_processes", lambda: False)
    encoded_here, encode = [], embeddings._encode_chunk
    monkeypatch.setattr(embeddings, "_encode_chunk", lambda *a: encoded_here.append(1) or encode(*a))

    result = embed_products(flavor="precision", chunk_size=CHUNK)

    assert result.encoded == 240 and len(encoded_here) == -(-240 // CHUNK)
    assert not multiprocessing.active_children()
