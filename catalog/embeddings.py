"""Embedding products into pgvector, incrementally: only texts whose hash (text + model) changed
are encoded. Large loads drop the flavor's HNSW index, write, and rebuild it (about 7x faster).

One path, in chunks: `embed_plan` splits the products into chunks of `CHUNK_PRODUCTS` (and drops the
index before a large load), `embed_chunk` builds, hashes, encodes and writes one chunk's vectors,
`finish_embedding` (re)builds the index once and adds the counts up. The `embed` job returns the plan, so
its chunks run on every worker (jobs.runner.Chunked); `embed_products` runs the same plan in this process."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from catalog.encoder import EncoderProcesses, can_start_processes, default_device, encode_texts, load_encoder
from catalog.models import Flavor, Product, ProductEmbedding, check_flavors
from catalog.text import LLMConfig, extract_attributes, product_text, text_hash
from config.database import BINARY_COPY_SIGNATURE, close_threads, done_beside
from jobs.runner import Chunked, JobFailed, chunk_progress, cleaned_up_on_failure, run_chunks_here, run_finish_here

WRITE_BATCH = 2000
REBUILD_INDEX_ABOVE = 5000  # products without a vector of the model: more, and the index is dropped and rebuilt
# Products a chunk (one task): ~40 s of one quiet CPU core (MiniLM ~125 texts/s a core), under a second of a
# GPU, so a chunk's fixed cost (a task, a product query, a COPY; the encoder stays loaded in the worker) is small, a
# chunk's vectors are 7.7 MB, and a million products make 200 chunks: enough to keep any number of workers
# evenly busy. Identical texts are encoded once within a chunk.
CHUNK_PRODUCTS = 5000


@dataclass
class EmbedResult:
    flavor: str
    products: int
    encoded: int
    unchanged: int
    index_rebuilt: bool

    def as_dict(self) -> dict:
        return asdict(self)


def model_name() -> str:
    return settings.SEMID_EMBEDDING_MODEL


def llm_config() -> LLMConfig | None:
    """The discovery record's LLM, from the SEMID_LLM_* settings; None: the offline rules."""
    if not settings.SEMID_LLM_URL:
        return None
    return LLMConfig(url=settings.SEMID_LLM_URL, model=settings.SEMID_LLM_MODEL,
                     cache_dir=str(Path(settings.SEMID_HOME) / "llm-cache"), timeout=settings.SEMID_LLM_TIMEOUT,
                     api_key=settings.SEMID_LLM_API_KEY)


def refresh_extracted_attributes(products: list[Product]) -> dict[int, dict]:
    """The discovery record of each product, stored on it (shown in the UI)."""
    changed, records = [], {}
    llm = llm_config()
    for product in products:
        attributes = extract_attributes(product.as_record(), llm)
        records[product.pk] = attributes
        if attributes != product.extracted:
            product.extracted = attributes
            changed.append(product)
    for start in range(0, len(changed), WRITE_BATCH):
        Product.objects.bulk_update(changed[start : start + WRITE_BATCH], ["extracted"])
    return records


def texts_for(products: list[Product], flavor: str) -> list[str]:
    if flavor == Flavor.DISCOVERY:
        records = refresh_extracted_attributes(products)
        return [product_text(p.as_record(), flavor, attributes=records[p.pk]) for p in products]
    return [product_text(p.as_record(), flavor) for p in products]


def embed_products(*, flavor: str, product_ids: list[int] | None = None, progress=None,
                   chunk_size: int | None = None, build_index: bool = True) -> EmbedResult:
    """Embed the products (all, or `product_ids`) in this process: the `embed` job's chunks, each encoded while
    the next is read and the last written (`_run_plan_here`). `build_index` False: an index the plan dropped is
    left to the caller (`index_built_beside`)."""
    plan = embed_plan(flavors=[flavor], product_ids=product_ids, chunk_size=chunk_size, build_index=build_index)
    return EmbedResult(**_run_plan_here(plan, progress=progress)[flavor])


def embed_plan(*, flavors: list[str], product_ids: list[int] | None = None, chunk_size: int | None = None,
               build_index: bool = True) -> Chunked:
    """The chunks of an embedding: per flavor, the products by id in runs of `chunk_size`. Where more than
    REBUILD_INDEX_ABOVE products have no vector of this model (a first load, a new model), the flavor's
    HNSW index is dropped now, before any chunk writes, and `finish_embedding` builds it once at the end."""
    flavors = check_flavors(flavors)
    chunk_size = CHUNK_PRODUCTS if chunk_size is None else chunk_size
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    name = model_name()
    scope = Product.objects.all() if product_ids is None else Product.objects.filter(pk__in=product_ids)
    ids = list(scope.order_by("id").values_list("id", flat=True))
    chunks, rebuild = [], {}
    for flavor in flavors:
        have = ProductEmbedding.objects.filter(flavor=flavor, model_name=name)
        if product_ids is not None:
            have = have.filter(product_id__in=ids)
        rebuild[flavor] = len(ids) - have.count() > REBUILD_INDEX_ABOVE
        for start in range(0, len(ids), chunk_size):
            part = ids[start : start + chunk_size]
            chunk = {"flavor": flavor, "first": part[0], "last": part[-1]}
            if product_ids is not None:
                chunk["ids"] = part
            chunks.append(chunk)
    for flavor, drop in rebuild.items():
        if drop:
            _drop_index(flavor)
    return Chunked(chunks=chunks, run_chunk="catalog.embeddings.embed_chunk",
                   finish="catalog.embeddings.finish_embedding", cleanup="catalog.embeddings.restore_indexes",
                   state={"model": name, "flavors": list(flavors), "rebuild": rebuild, "build_index": build_index})


def embed_chunk(*, params: dict, state: dict, chunk: dict, progress=None) -> dict:
    """One chunk: the texts of its products, their hashes, the new or changed ones encoded (each distinct
    text once) and written by binary COPY. Idempotent: a chunk run again finds its texts stored."""
    work = _read_chunk(state, chunk)
    vectors = _encode_chunk(work, state, progress)
    return _write_chunk(work, state, vectors, progress)


@dataclass
class _ChunkWork:
    """What a chunk has to encode, read from the database: the texts to encode (each once) and, for each
    product to write, its id, text hash and row among them."""
    flavor: str
    products: int
    product_ids: list[int]
    hashes: list[str]
    rows: list[int]
    distinct: list[str]
    replace: list[int]


def _read_chunk(state: dict, chunk: dict) -> _ChunkWork:
    flavor, name = chunk["flavor"], state["model"]
    queryset = Product.objects.filter(pk__gte=chunk["first"], pk__lte=chunk["last"]).order_by("id")
    if "ids" in chunk:
        queryset = queryset.filter(pk__in=chunk["ids"])
    products = list(queryset.only("id", "name", "brand", "description", "size", "attributes", "extracted"))
    texts = texts_for(products, flavor)
    hashes = [text_hash(t, name) for t in texts]
    # The chunk's stored hashes by its id range (a list of 5,000 ids in the query cost more than the rows).
    stored = dict(ProductEmbedding.objects.filter(flavor=flavor, product_id__gte=chunk["first"],
                                                  product_id__lte=chunk["last"]).values_list("product_id", "text_hash"))
    todo = [i for i, p in enumerate(products) if stored.get(p.pk) != hashes[i]]
    # Identical texts (a product listed twice, in other sizes) are encoded once.
    distinct = list(dict.fromkeys(texts[i] for i in todo))
    position = {text: j for j, text in enumerate(distinct)}
    return _ChunkWork(flavor=flavor, products=len(products), product_ids=[products[i].pk for i in todo],
                      hashes=[hashes[i] for i in todo], rows=[position[texts[i]] for i in todo], distinct=distinct,
                      replace=[products[i].pk for i in todo if products[i].pk in stored])


def _encode_chunk(work: _ChunkWork, state: dict, progress=None) -> np.ndarray:
    if not work.distinct:
        return np.empty((0, 0), dtype=np.float32)
    return encode_texts(
        load_encoder(state["model"]),
        work.distinct,
        batch_size=settings.SEMID_EMBEDDING_BATCH_SIZE,
        progress=(lambda done, total: progress(0.95 * done / total)) if progress else None,
    )


def _write_chunk(work: _ChunkWork, state: dict, vectors: np.ndarray, progress=None) -> dict:
    if work.product_ids:
        with transaction.atomic():
            _write_vectors(flavor=work.flavor, model=state["model"], product_ids=work.product_ids,
                           hashes=work.hashes, vectors=vectors[work.rows], replace=work.replace)
    if progress:
        progress(1.0)
    return {"flavor": work.flavor, "products": work.products, "encoded": len(work.product_ids)}


# A plan's chunks in this process keep the encoder busy: while chunks are encoded, a thread reads the next
# (products, texts, hashes) and another writes the encoded ones' vectors. Threads have their own connections, so
# they only see committed rows: inside a transaction the chunks run one after another.
OVERLAP_CHUNKS = True
# On a GPU one process's encoding is bound by its tokenizer, not by the GPU: the chunks of a large embedding are
# encoded by ENCODER_PROCESSES_ON_GPU processes at once (catalog.encoder.EncoderProcesses; SEMID_EMBEDDING_PROCESSES
# sets another count, 0 encodes in this process). A million products' chunks took 46.4-50.2 s with four processes
# against 108.7 s in this process on an H200 (0.23-0.25 s a chunk against 0.54 s; docs/performance.md), and the
# processes take 13-16 s to start: below about 40-50 chunks the start costs what they save (at 40 chunks, 200,000
# products: 37.1 s against 40.6 s chunk after chunk in this process, docs/benchmarks.md).
ENCODER_PROCESSES_ON_GPU = 4
ENCODER_PROCESSES_FROM_CHUNKS = 40


def encoder_process_count() -> int:
    configured = settings.SEMID_EMBEDDING_PROCESSES
    if configured is not None:
        if configured < 0:
            raise ValueError(f"SEMID_EMBEDDING_PROCESSES must be 0 or more, not {configured}")
        return configured
    return ENCODER_PROCESSES_ON_GPU if default_device() == "cuda" else 0


class _ChunkEncoder:
    """Encodes a plan's chunks: in encoder processes, as many chunks at once as there are processes, or in this
    process, one at a time (`submit` returns once the vectors are there)."""

    def __init__(self, state: dict, pool: EncoderProcesses | None = None):
        self.state, self.pool = state, pool
        self.depth = pool.processes if pool else 0  # chunks encoded while the oldest is waited for

    def submit(self, work: _ChunkWork) -> Future:
        if self.pool is None or not work.distinct:  # (nothing to encode when nothing in the chunk changed)
            future = Future()
            future.set_result(_encode_chunk(work, self.state))
            return future
        return self.pool.submit(work.distinct, batch_size=settings.SEMID_EMBEDDING_BATCH_SIZE)


@contextmanager
def _chunk_encoder(plan: Chunked):
    """Encoder processes for the plan's chunks while it runs (a large plan where there are processes to use and
    this process may start them: not in a Celery prefork worker, whose processes are daemonic), else this
    process."""
    processes = encoder_process_count()
    if not processes or len(plan.chunks) < ENCODER_PROCESSES_FROM_CHUNKS or not can_start_processes():
        yield _ChunkEncoder(plan.state)
        return
    with EncoderProcesses(plan.state["model"], default_device(), processes) as pool:
        yield _ChunkEncoder(plan.state, pool)


def _run_plan_here(plan: Chunked, progress=None) -> dict:
    """`plan` in this process: the same chunk functions as the workers', so the same result
    (jobs.runner.run_chunks_here), with reads, encodings and writes overlapping where they can."""
    if not OVERLAP_CHUNKS or len(plan.chunks) < 2 or connection.in_atomic_block:
        return run_chunks_here(plan, params={}, progress=progress)
    total = len(plan.chunks)
    reader = ThreadPoolExecutor(1, thread_name_prefix="embed-read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="embed-write")
    encoding = deque()  # (chunk, future of its vectors), in the plan's order
    with cleaned_up_on_failure(plan, {}), _chunk_encoder(plan) as encoder:
        try:
            read, written = reader.submit(_read_chunk, plan.state, plan.chunks[0]), []
            for i in range(total):
                work = read.result()
                if i + 1 < total:
                    read = reader.submit(_read_chunk, plan.state, plan.chunks[i + 1])
                encoding.append((work, encoder.submit(work)))
                while encoding and (len(encoding) > encoder.depth or i + 1 == total):
                    work, vectors = encoding.popleft()
                    vectors = vectors.result()
                    if len(written) >= 2:  # at most two chunks' vectors wait for the writer
                        written[-2].result()
                    written.append(writer.submit(_write_chunk, work, plan.state, vectors))
                    if progress:
                        chunk_progress(progress, len(written) - 1, total)(1.0)
            results = [w.result() for w in written]
        finally:  # the writes under way finish before any cleanup
            for _, vectors in encoding:
                vectors.cancel()
            close_threads(reader, writer)
    return run_finish_here(plan, params={}, results=results, progress=progress)


def finish_embedding(*, params: dict, state: dict, results: list[dict], progress=None) -> dict:
    """Once every chunk is written: each flavor's HNSW index built if the plan dropped it (or a failed
    embedding left it missing), and its counts. The result: {flavor: EmbedResult as a dict}."""
    out = {}
    for flavor in state["flavors"]:
        mine = [r for r in results if r["flavor"] == flavor]
        if progress:
            progress(len(out) / len(state["flavors"]), 1.0, f"{flavor}: index")
        rebuilt = _ensure_index(flavor) if state.get("build_index", True) else False
        products, encoded = sum(r["products"] for r in mine), sum(r["encoded"] for r in mine)
        out[flavor] = EmbedResult(flavor, products, encoded, products - encoded, rebuilt).as_dict()
    return out


@contextmanager
def index_built_beside(flavor: str):
    """The flavor's HNSW index, if missing (an embedding with `build_index` False), built on a thread while the
    block runs (config.database.done_beside): a run's training and audit only read the vectors, which the build
    does not block, and on a GPU machine the build's workers have the cores to themselves. The block's end waits
    for the build and raises its error; inside a transaction the index is built first."""
    with done_beside(_ensure_index, flavor, name="index-build"):
        yield


def restore_indexes(*, params: dict, state: dict) -> None:
    """After a failed embedding: the indexes the plan dropped are built again over what was written."""
    for flavor in state["flavors"]:
        _ensure_index(flavor)


def _write_vectors(*, flavor: str, model: str, product_ids: list[int], hashes: list[str], vectors: np.ndarray,
                   replace: list[int] | None = None) -> None:
    """Write these products' vectors with binary COPY (10k vectors: 0.2 s, against 17 s for bulk INSERTs); the
    stored vectors of `replace` (default: all of `product_ids`) are deleted first."""
    from pgvector.psycopg import register_vector

    table = ProductEmbedding._meta.db_table
    replace = product_ids if replace is None else replace
    for start in range(0, len(replace), 10000):
        ProductEmbedding.objects.filter(flavor=flavor, product_id__in=replace[start : start + 10000]).delete()
    raw = connection.connection
    register_vector(raw)
    now = timezone.now()
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            f"COPY {table} (product_id, flavor, model_name, text_hash, embedding, updated_at) "
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "varchar", "varchar", "varchar", "vector", "timestamptz"])
            for pk, text_hash_, vector in zip(product_ids, hashes, vectors):
                copy.write_row((pk, flavor, model, text_hash_, vector, now))


def _hnsw_indexes() -> dict:
    return {
        index.name: index
        for index in ProductEmbedding._meta.indexes
        if index.name.startswith("embedding_hnsw_")
    }


def _drop_index(flavor: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'DROP INDEX IF EXISTS "embedding_hnsw_{flavor}"')


def _index_exists(flavor: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = %s",
                       [f"embedding_hnsw_{flavor}"])
        return cursor.fetchone() is not None


def _ensure_index(flavor: str) -> bool:
    """Build the flavor's HNSW index if it is missing; True if it was built. Only then is the table locked
    (one builder at a time, readers not blocked), so two finishing embeddings do not build it twice."""
    if _index_exists(flavor):
        return False
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {ProductEmbedding._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        if _index_exists(flavor):
            return False
        _create_index(flavor)
    return True


# Building an HNSW index: pgvector holds the graph in maintenance_work_mem and, once it outgrows it, goes on
# on disk many times slower (PostgreSQL's default is 64 MB: about 35,000 of these vectors). A graph element is
# its vector (4 bytes a dimension) and its neighbour lists, about 1 kB with the default m = 16. Parallel workers
# share the graph's construction; the server runs on this machine (embedded) or one like it.
INDEX_BYTES_PER_ROW_OVER_VECTOR = 1024
INDEX_BUILD_MEMORY_MAX = 8 * 2**30
# The embedded server allows one worker a core (config.embedded.server_settings); a server with PostgreSQL's
# defaults (8 background workers) starts fewer than asked, and the build goes on with those.
INDEX_BUILD_WORKERS_MAX = 31


def index_build_settings(*, rows: int, dim: int) -> dict[str, str]:
    """The session settings of an HNSW build over `rows` vectors of `dim` dimensions: memory for the whole
    graph (a quarter more than the estimate, at least PostgreSQL's default, at most INDEX_BUILD_MEMORY_MAX) and
    one worker a core beside the leader (at most INDEX_BUILD_WORKERS_MAX)."""
    graph = rows * (4 * dim + INDEX_BYTES_PER_ROW_OVER_VECTOR) * 5 // 4
    memory_mb = min(max(graph, 64 * 2**20), INDEX_BUILD_MEMORY_MAX) // 2**20
    workers = max(0, min(INDEX_BUILD_WORKERS_MAX, (os.cpu_count() or 1) - 1))
    return {"maintenance_work_mem": f"{memory_mb}MB", "max_parallel_maintenance_workers": str(workers)}


def _create_index(flavor: str, build_settings: dict[str, str] | None = None) -> None:
    """CREATE INDEX with `build_settings` (default: index_build_settings of the flavor's vectors) set for
    this transaction only."""
    index = _hnsw_indexes()[f"embedding_hnsw_{flavor}"]
    if build_settings is None:
        rows = ProductEmbedding.objects.filter(flavor=flavor).count()
        build_settings = index_build_settings(rows=rows, dim=ProductEmbedding._meta.get_field("embedding").dimensions)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # deferred FK checks of the rows just written block it
        for name, value in build_settings.items():
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
        with connection.schema_editor(atomic=False) as editor:
            editor.add_index(ProductEmbedding, index)


def embed_job(*, params: dict, user=None, progress=None) -> Chunked:
    """The `embed` job: its plan, whose chunks the workers share. Params: `flavors`, `product_ids` (default:
    every product), `chunk_size` (products a chunk)."""
    try:
        return embed_plan(flavors=params.get("flavors") or Flavor.values, product_ids=params.get("product_ids"),
                          chunk_size=int(params.get("chunk_size") or CHUNK_PRODUCTS))
    except ValueError as exc:
        raise JobFailed(str(exc)) from exc


# --- selectors -------------------------------------------------------------------------------



def product_vectors(*, flavor: str, product_ids: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids (N,), vectors (N, D)) ordered by product id, read by one binary COPY whose fixed-width rows numpy
    reads in place (20,000 vectors: 4.2 s as Python objects through the ORM, see docs/benchmarks.md)."""
    where, params = "flavor = %s", [flavor]
    if product_ids is not None:
        where, params = where + " AND product_id = ANY(%s)", [*params, [int(pk) for pk in product_ids]]
    query = (f"COPY (SELECT product_id, embedding FROM {ProductEmbedding._meta.db_table} WHERE {where} "
             "ORDER BY product_id) TO STDOUT (FORMAT BINARY)")
    with connection.cursor() as cursor, cursor.cursor.copy(query, params) as copy:
        data = b"".join(bytes(block) for block in copy)
    return _parse_vector_copy(data)


def embedded_ids(*, flavor: str) -> np.ndarray:
    """(N,) ids of the products with a vector of the flavor, in `product_vectors`' order (by id), without the
    vectors."""
    rows = (ProductEmbedding.objects.filter(flavor=flavor).order_by("product_id")
            .values_list("product_id", flat=True).iterator(chunk_size=100_000))
    return np.fromiter(rows, np.int64)


def _parse_vector_copy(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A binary COPY of (product id, vector) rows (its signature, flags, header extension, then per row the field
    count and each field's length and bytes, big-endian, then -1) read in place: the rows have a fixed width."""
    if not data.startswith(BINARY_COPY_SIGNATURE):
        raise ValueError("not a binary COPY stream")
    signature = len(BINARY_COPY_SIGNATURE)
    start = signature + 8 + int.from_bytes(data[signature + 4 : signature + 8], "big")
    body = memoryview(data)[start:-2]  # the rows, without the trailer
    if not len(body):
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    dim = int.from_bytes(body[2 + 4 + 8 + 4 : 2 + 4 + 8 + 4 + 2], "big")  # pgvector: dimensions, unused, floats
    row = np.dtype([("fields", ">i2"), ("id_length", ">i4"), ("id", ">i8"), ("vector_length", ">i4"),
                    ("dim", ">u2"), ("unused", ">u2"), ("vector", ">f4", (dim,))])
    if len(body) % row.itemsize:
        raise ValueError(f"vectors of different dimensions in one COPY (the first has {dim})")
    rows = np.frombuffer(body, dtype=row)
    if not ((rows["fields"] == 2) & (rows["id_length"] == 8) & (rows["vector_length"] == 4 + 4 * dim)
            & (rows["dim"] == dim)).all():
        raise ValueError(f"vectors of different dimensions in one COPY (the first has {dim})")
    return rows["id"].astype(np.int64), rows["vector"].astype(np.float32)


def neighbours_of_vectors(*, vectors, flavor: str, k: int = 10, exclude_product_ids=(), chunk: int = 256,
                          ) -> list[list[tuple[int, float]]]:
    """Per vector (stored or not), (product id, cosine) of the k nearest products of the flavor outside
    `exclude_product_ids`, nearest first: one query per `chunk` vectors, each vector a LATERAL walk of the
    flavor's HNSW index (was a query per vector with the exclusions in every one: 10 ms each at 1,000)."""
    vectors = np.asarray(vectors, np.float32).reshape(len(vectors), -1)
    excluded = sorted({int(pk) for pk in exclude_product_ids})
    out: list[list[tuple[int, float]]] = [[] for _ in range(len(vectors))]
    sql = f"""
        SELECT q.ord, e.product_id, 1 - e.distance
        FROM unnest(%s::text[]) WITH ORDINALITY AS q(v, ord)
        CROSS JOIN LATERAL (
            SELECT product_id, embedding <=> q.v::vector AS distance
            FROM {ProductEmbedding._meta.db_table}
            WHERE flavor = %s AND NOT (product_id = ANY(%s::bigint[]))
            ORDER BY embedding <=> q.v::vector
            LIMIT %s
        ) e
        ORDER BY q.ord, e.distance"""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.ef_search = %s", [max(40, 2 * k)])
        for start in range(0, len(vectors), chunk):
            texts = ["[" + ",".join(f"{v:.9g}" for v in row) + "]" for row in vectors[start : start + chunk]]
            cursor.execute(sql, [texts, flavor, excluded, k])
            for ord_, pk, similarity in cursor.fetchall():
                out[start + ord_ - 1].append((pk, float(similarity)))
    return out


def neighbours_of_vector(*, vector, flavor: str, k: int = 10, exclude_product_ids=()) -> list[tuple[int, float]]:
    """(product id, cosine) of the k products nearest an embedding that need not be stored."""
    return neighbours_of_vectors(vectors=[vector], flavor=flavor, k=k, exclude_product_ids=exclude_product_ids)[0]


def similar_products(*, product: Product, flavor: str, k: int = 10) -> list[tuple[Product, float]]:
    """The k nearest products by cosine similarity, through the flavor's HNSW index."""
    try:
        vector = ProductEmbedding.objects.get(product=product, flavor=flavor).embedding
    except ProductEmbedding.DoesNotExist:
        return []
    pairs = neighbours_of_vector(vector=vector, flavor=flavor, k=k, exclude_product_ids=[product.pk])
    products = Product.objects.select_related("category").in_bulk([pk for pk, _ in pairs])
    return [(products[pk], similarity) for pk, similarity in pairs if pk in products]
