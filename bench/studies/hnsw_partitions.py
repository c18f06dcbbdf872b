"""Would an embedding table split into hash partitions, each with its own HNSW index, let the index be built while
the vectors arrive (issue 18's embed goal), and what would it cost the kNN queries?

Today the embed step writes every vector, then builds one HNSW graph over them: at a million on the GPU machine
the build (30.6 s) starts after the last vector and caps the step at 0.62 of bare `encode` (docs/benchmarks.md,
"What bounds it"). With P partitions the step could build a partition's graph as soon as its chunks are written,
leaving only the last partition's build after the last vector. This measures, on real vectors (the cached
precision vectors of ../shared/data/instacart.csv, tiled with jitter to --n), in two tables of the same rows:

- one table with one partial HNSW index (as shipped: m 16, ef_construction 64, cosine), built once;
- a table PARTITION BY HASH (product id) into --partitions parts, each part's index built on its own: each
  build's time (the last is what would be left after the last vector) and their sum;
- kNN through each (`ORDER BY embedding <=> q LIMIT 10`, hnsw.ef_search 40 as the application sets it): p50 / p95
  latency over --queries queries, recall@10 against exact cosine, and the partitioned query's plan.

    .venv/bin/python bench/studies/hnsw_partitions.py --n 200000 --partitions 16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _django import use_database  # noqa: E402
from common import embed_dataset, load_dataset  # noqa: E402

DIM = 384


def vectors(n: int, seed: int = 0) -> np.ndarray:
    """The cached instacart precision vectors, tiled with jitter to n rows, unit length."""
    base = embed_dataset(load_dataset("instacart"), "precision")
    rng = np.random.default_rng(seed)
    rows = base[np.arange(n) % len(base)].astype(np.float32)
    rows[len(base):] += rng.normal(0, 0.02, size=(max(0, n - len(base)), DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def copy_in(cursor, table: str, data: np.ndarray) -> None:
    with cursor.copy(f"COPY {table} (product_id, flavor, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "text", "vector"])
        for pk, row in enumerate(data, start=1):
            copy.write_row((pk, "precision", row))


def build(cursor, table: str, name: str, rows: int, workers: int) -> float:
    """The shipped precision index (its m, ef_construction and opclass) on `table`, with the step's build memory
    (`index_build_settings`) and `workers` parallel workers; seconds."""
    from catalog.embeddings import _hnsw_indexes, index_build_settings

    index = _hnsw_indexes()["embedding_hnsw_precision"]
    settings = index_build_settings(rows=rows, dim=DIM)
    settings["max_parallel_maintenance_workers"] = str(workers)
    for setting, value in settings.items():
        cursor.execute("SELECT set_config(%s, %s, false)", [setting, value])
    started = time.perf_counter()
    cursor.execute(f"CREATE INDEX {name} ON {table} USING hnsw (embedding {index.opclasses[0]}) "
                   f"WITH (m = {index.m}, ef_construction = {index.ef_construction}) WHERE flavor = 'precision'")
    return time.perf_counter() - started


def knn(cursor, table: str, queries: np.ndarray, k: int = 10) -> tuple[list[float], list[list[int]]]:
    cursor.execute("SET hnsw.ef_search = 40")  # what neighbours_of_vectors sets for k 10
    times, found = [], []
    for q in queries:
        text = "[" + ",".join(f"{v:.9g}" for v in q) + "]"
        started = time.perf_counter()
        cursor.execute(f"SELECT product_id FROM {table} WHERE flavor = 'precision' "
                       "ORDER BY embedding <=> %s::vector LIMIT %s", [text, k])
        found.append([pk for (pk,) in cursor.fetchall()])
        times.append(time.perf_counter() - started)
    return times, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workers", type=int, default=None, help="build workers (default: cores less one)")
    args = parser.parse_args()
    use_database("semid_bench_partitions")
    from catalog.embeddings import index_build_settings

    shipped = int(index_build_settings(rows=args.n, dim=DIM)["max_parallel_maintenance_workers"])
    workers = shipped if args.workers is None else args.workers
    from django.db import connection

    data = vectors(args.n)
    rng = np.random.default_rng(1)
    picks = rng.choice(args.n, size=args.queries, replace=False)
    queries = data[picks] + rng.normal(0, 0.05, size=(args.queries, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = np.argsort(-(queries @ data.T), axis=1)[:, :10] + 1  # product ids are rows + 1

    connection.ensure_connection()
    connection.connection.autocommit = True
    from pgvector.psycopg import register_vector

    register_vector(connection.connection)
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor
        cursor.execute("DROP TABLE IF EXISTS single, parted")
        columns = f"(product_id bigint NOT NULL, flavor text NOT NULL, embedding vector({DIM}) NOT NULL)"
        cursor.execute(f"CREATE TABLE single {columns}")
        cursor.execute(f"CREATE TABLE parted {columns} PARTITION BY HASH (product_id)")
        for r in range(args.partitions):
            cursor.execute(f"CREATE TABLE parted_{r} PARTITION OF parted "
                           f"FOR VALUES WITH (MODULUS {args.partitions}, REMAINDER {r})")
        for table in ("single", "parted"):
            copy_in(cursor, table, data)
            cursor.execute(f"VACUUM ANALYZE {table}")
        one = build(cursor, "single", "single_hnsw", args.n, workers)
        parts = []
        for r in range(args.partitions):
            cursor.execute(f"SELECT count(*) FROM parted_{r}")
            parts.append(build(cursor, f"parted_{r}", f"parted_{r}_hnsw", cursor.fetchone()[0], workers))
        cursor.execute("VACUUM ANALYZE single")
        cursor.execute("VACUUM ANALYZE parted")
        knn(cursor, "single", queries[:10])  # warm the caches
        knn(cursor, "parted", queries[:10])
        results = {}
        for table in ("single", "parted", "single", "parted"):  # alternated, the second round kept
            results[table] = knn(cursor, table, queries)
        text = "[" + ",".join(f"{v:.9g}" for v in queries[0]) + "]"
        cursor.execute("EXPLAIN SELECT product_id FROM parted WHERE flavor = 'precision' "
                       "ORDER BY embedding <=> %s::vector LIMIT 10", [text])
        plan = [line.split(" '[")[0] for (line,) in cursor.fetchall()]  # the query's vector left out
        cursor.execute("DROP TABLE single, parted")

    print(f"{args.n:,} vectors (instacart precision, tiled with jitter), {args.partitions} hash partitions, "
          f"{workers} build worker(s), {args.queries} queries, k 10, ef_search 40")
    print(f"build: one index {one:.1f} s; partitions {sum(parts):.1f} s in all, each "
          f"{min(parts):.2f}-{max(parts):.2f} s (the last {parts[-1]:.2f} s)")
    for table, (times, found) in results.items():
        recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact.tolist())])
        ms = sorted(t * 1000 for t in times)
        print(f"{table:>7}: p50 {statistics.median(ms):.2f} ms, p95 {ms[int(0.95 * len(ms)) - 1]:.2f} ms, "
              f"recall@10 {recall:.3f}")
    print("the partitioned query's plan:\n  " + "\n  ".join(plan[:6]) + ("\n  ..." if len(plan) > 6 else ""))


if __name__ == "__main__":
    main()
