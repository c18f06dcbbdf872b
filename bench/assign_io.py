"""The database side of training a run: reading the flavor's vectors (`catalog.embeddings.product_vectors`) and
writing every product's code (`quantizer.services.write_codes`, its cluster words included), side by side
with the ORM paths they replaced (kept here as the reference), on N generated products with stand-in vectors
and codes. Both sides must store and read the same values; median of --repeats, alternating.

    .venv/bin/python bench/assign_io.py [--n 20000] [--repeats 2] [--json PATH]
    .venv/bin/python bench/assign_io.py --summaries --n 100000   # write_codes with the summaries' trigger on / off /
                                                                 # levels 1-2 / none, then the rest rebuilt
    .venv/bin/python bench/assign_io.py --taxonomy --n 1000000   # every product's category chain, two ways

`--summaries`: what the cluster summaries cost `write_codes`. Codes with deep levels of about a product a
cluster (level 1 of 256, level 2 of 40 per level-1 code, levels 3 and 4 random), a new run each time, written with
the summaries' insert trigger on and off (each inside a transaction rolled back afterwards), keeping levels 1-2 only
(`summary_levels`) with the deeper levels then rebuilt (`rebuild_cluster_summaries`, "then levels 3+"), and keeping
none with every level then rebuilt ("then every level": what the pipeline does, beside the audit), these two
committed (the rebuild's levels run side by side on threads, which read committed rows) and the run deleted after;
alternating. Each gives the same clusters and words as the first (checked).

`--taxonomy`: `quantizer.services.taxonomy_array` of every product (training and the audit each call it once),
its products' categories read with the ids listed in the query (what it did) and by the ids' range (what it
does above `IDS_IN_QUERY_MAX` ids), alternating; both give the same array.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _django  # noqa: E402


def orm_vectors(flavor: str):
    from catalog.models import ProductEmbedding

    pairs = list(ProductEmbedding.objects.filter(flavor=flavor).order_by("product_id").values_list(
        "product_id", "embedding"))
    return (np.fromiter((p for p, _ in pairs), dtype=np.int64, count=len(pairs)),
            np.vstack([np.asarray(v, dtype=np.float32) for _, v in pairs]))


def bulk_create_codes(*, run, product_ids, codes, errors, gaps):
    """write_codes for a new run as it was: SemanticId objects through bulk_create, 5,000 a statement."""
    from django.db import transaction

    from quantizer.clusters import fill_words
    from quantizer.core.ids import code_string, disambiguate
    from quantizer.models import SemanticId

    order = np.argsort(product_ids, kind="stable")
    product_ids, codes, errors, gaps = product_ids[order], codes[order], errors[order], gaps[order]
    strings = [code_string(row) for row in codes.tolist()]
    tokens = disambiguate(strings, {})
    rows = [SemanticId(run=run, product_id=pk, codes=codes[i].tolist(), code=strings[i], token=tokens[i],
                       reconstruction_error=float(errors[i]), gaps=[float(g) for g in gaps[i]])
            for i, pk in enumerate(product_ids.tolist())]
    with transaction.atomic():
        for start in range(0, len(rows), 5000):
            SemanticId.objects.bulk_create(rows[start : start + 5000], update_conflicts=True,
                                           unique_fields=["run", "product"],
                                           update_fields=["codes", "code", "token", "reconstruction_error", "gaps"])
    fill_words(run=run)


class RolledBack(Exception):
    pass


def summaries_cost(n: int, repeats: int) -> None:
    import contextlib

    from django.db import connection, transaction
    from django.db.models import Count

    from quantizer.clusters import rebuild_cluster_summaries
    from quantizer.models import ClusterSummary, QuantizerRun
    from quantizer.services import write_codes

    ids = _django.import_generated_catalog(n)
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, len(ids))
    codes = np.stack([first, (first * 7 + rng.integers(0, 40, len(ids))) % 256, rng.integers(0, 256, len(ids)),
                      rng.integers(0, 256, len(ids))], 1).astype(np.int64)
    errors, gaps = rng.random(len(ids)).astype(np.float32), rng.random(codes.shape).astype(np.float32)
    variants = ["trigger on", "trigger off", "levels 1-2", "levels none"]
    rests = {"levels 1-2": "then levels 3+", "levels none": "then every level"}
    seconds: dict[str, list[float]] = {label: [] for label in [*variants, *rests.values()]}
    clusters, summaries = {}, {}
    for _ in range(repeats):
        for label in variants:
            rolled_back = label in ("trigger on", "trigger off")  # the others commit: the levels' threads read it
            try:
                with transaction.atomic(durable=True) if rolled_back else contextlib.nullcontext():
                    run = QuantizerRun.objects.create(flavor="precision", embedding_model="stand-in")
                    if label == "trigger off":
                        with connection.cursor() as cursor:
                            cursor.execute("ALTER TABLE quantizer_semanticid "
                                           "DISABLE TRIGGER quantizer_summary_semid_insert")
                    levels = {"levels none": 0, "levels 1-2": 2}.get(label)
                    started = time.perf_counter()
                    write_codes(run=run, product_ids=ids, codes=codes, errors=errors, gaps=gaps,
                                summary_levels=levels)
                    with connection.cursor() as cursor:
                        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred checks a commit would run
                    seconds[label].append(time.perf_counter() - started)
                    if levels is not None:
                        started = time.perf_counter()
                        rebuild_cluster_summaries(run=run, first_level=levels + 1)
                        seconds[rests[label]].append(time.perf_counter() - started)
                    if label != "trigger off":  # the same clusters either way
                        summaries[label] = {
                            (prefix, size, json.dumps(labels, sort_keys=True), json.dumps(words))
                            for prefix, size, labels, words in ClusterSummary.objects.filter(run=run).values_list(
                                "prefix", "size", "labels", "words")}
                        clusters = dict(ClusterSummary.objects.filter(run=run).values_list("level").annotate(
                            n=Count("id"))) or clusters
                    if rolled_back:
                        raise RolledBack
                    run.delete()
            except RolledBack:
                pass
    assert len({frozenset(v) for v in summaries.values()}) == 1, "the summaries differ"
    print(f"{len(ids):,} products; summary rows by level {clusters}")
    for label, times in seconds.items():
        runs = [round(t, 2) for t in times]
        print(f"  write_codes, {label:<13} median {statistics.median(times):6.2f} s   runs {runs}")


def taxonomy_cost(n: int, repeats: int) -> None:
    import quantizer.services as services

    ids = _django.import_generated_catalog(n)
    seconds: dict[str, list[float]] = {"ids listed": [], "ids' range": []}
    arrays = {}
    for _ in range(repeats):
        for label, limit in [("ids listed", len(ids)), ("ids' range", services.IDS_IN_QUERY_MAX)]:
            shipped, services.IDS_IN_QUERY_MAX = services.IDS_IN_QUERY_MAX, limit
            try:
                started = time.perf_counter()
                arrays[label] = services.taxonomy_array(ids)
                seconds[label].append(time.perf_counter() - started)
            finally:
                services.IDS_IN_QUERY_MAX = shipped
    assert np.array_equal(*arrays.values())
    print(f"{len(ids):,} products, taxonomy_array")
    for label, times in seconds.items():
        print(f"  {label:<11} median {statistics.median(times):6.2f} s   runs {[round(t, 2) for t in times]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--summaries", action="store_true",
                        help="write_codes with the summaries' trigger on / off / levels 1-2")
    parser.add_argument("--taxonomy", action="store_true", help="taxonomy_array, the ids listed or ranged")
    args = parser.parse_args()
    _django.fresh_database("semid_bench_assign_io")
    if args.summaries:
        return summaries_cost(args.n, args.repeats)
    if args.taxonomy:
        return taxonomy_cost(args.n, args.repeats)
    from django.db import transaction

    from catalog.embeddings import _write_vectors, product_vectors
    from quantizer.models import ClusterSummary, QuantizerRun, SemanticId
    from quantizer.services import write_codes

    ids = _django.import_generated_catalog(args.n)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(ids), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with transaction.atomic():
        _write_vectors(flavor="precision", model="stand-in", product_ids=ids.tolist(), hashes=[""] * len(ids),
                       vectors=vectors)
    # Codes shaped like a trained run's at this size: 4 levels, most level-2 clusters a few dozen products.
    codes = np.stack([rng.integers(0, 64, len(ids)), rng.integers(0, 16, len(ids)), rng.integers(0, 16, len(ids)),
                      rng.integers(0, 4, len(ids))], 1)
    errors, gaps = rng.random(len(ids)).astype(np.float32), rng.random(codes.shape).astype(np.float32)

    seconds: dict[str, list[float]] = {"vectors, ORM": [], "vectors, COPY": [], "codes, bulk_create": [],
                                       "codes, COPY + upsert": []}
    runs = {}
    for _ in range(args.repeats):
        for label, read in [("vectors, ORM", orm_vectors), ("vectors, COPY", lambda f: product_vectors(flavor=f))]:
            started = time.perf_counter()
            got_ids, got = read("precision")
            seconds[label].append(time.perf_counter() - started)
            assert np.array_equal(got_ids, ids) and np.array_equal(got, vectors)
        for label, write in [("codes, bulk_create", bulk_create_codes), ("codes, COPY + upsert", write_codes)]:
            runs[label] = QuantizerRun.objects.create(flavor="precision", embedding_model="stand-in")
            started = time.perf_counter()
            write(run=runs[label], product_ids=ids, codes=codes, errors=errors, gaps=gaps)
            seconds[label].append(time.perf_counter() - started)

    def stored(run):
        return (list(SemanticId.objects.filter(run=run).order_by("product_id").values_list(
                    "product_id", "codes", "code", "token", "reconstruction_error", "gaps")),
                list(ClusterSummary.objects.filter(run=run).order_by("prefix").values_list(
                    "prefix", "size", "labels", "words")))

    assert stored(runs["codes, bulk_create"]) == stored(runs["codes, COPY + upsert"])
    medians = {label: round(statistics.median(times), 2) for label, times in seconds.items()}
    print(f"{len(ids):,} products, median of {args.repeats} (same values read and stored on both sides):")
    for label, median in medians.items():
        print(f"  {label:<22} {median:7.2f} s   runs {[round(t, 2) for t in seconds[label]]}")
    print(f"  reading vectors: {medians['vectors, ORM'] / medians['vectors, COPY']:.1f}x; writing codes: "
          f"{medians['codes, bulk_create'] / medians['codes, COPY + upsert']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"n": len(ids), "median_s": medians, "runs_s": seconds}, indent=1))


if __name__ == "__main__":
    main()
