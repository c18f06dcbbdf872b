"""Embedding throughput of the whole embed step vs bare SentenceTransformer.encode, and kNN latency.

    .venv/bin/python bench/embed.py [--limit N] [--knn-products 50000]

1. Imports ../shared/data/bigbasket.csv into a fresh database.
2. Times bare `model.encode` of the precision texts and the whole `embed_products` step (texts,
   hashes, encode, vector writes, index rebuild) on the same texts, interleaved slice by slice:
   ratio goal >= 0.9.
3. Pads the table to --knn-products vectors (real vectors + small jitter) and times
   `similar_products` through the HNSW index: p50 goal <= 10 ms at 50k.

    .venv/bin/python bench/embed.py --demo N [--skip-default-build] [--shipped-only] [--json PATH]
                                                          # GPU: bench/gpu/e2e.sh embed N [options]

instead: a generated catalog of N products (`generate_demo_catalog`), bare `encode` of its precision texts, then
the whole `embed_products` step in one load (index dropped and rebuilt), --repeats times each way, alternating:
chunk after chunk (`OVERLAP_CHUNKS` off; its first run's time split into its parts: texts, encode, vector writes,
index build; the rest: product queries, hashes, the plan; left out with --shipped-only) and as shipped (the next chunk read and the last
written on threads while chunks are encoded: on a GPU from 40 chunks by four encoder processes,
`catalog.embeddings.ENCODER_PROCESSES_FROM_CHUNKS`; the ratio is of its median); then the
index built again with PostgreSQL's default build settings (64 MB, 2 workers) and with
`index_build_settings` (what the step uses). Beside each time, the machine's busy core-seconds (every process:
`common.MachineCPU`), and the ratio its cores would allow (`cpu_ceiling`).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import fresh_database, require  # noqa: E402
from common import MachineCPU  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--knn-products", type=int, default=50000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--demo", type=int, metavar="N", help="a generated catalog of N products, one load")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--repeats", type=int, default=2, help="--demo: whole steps each way, alternating")
    parser.add_argument("--skip-default-build", action="store_true",
                        help="--demo: no index build with PostgreSQL's defaults (on disk past ~35,000 vectors: long)")
    parser.add_argument("--shipped-only", action="store_true",
                        help="--demo: only the step as shipped, not chunk after chunk (a million: 100+ s a run)")
    args = parser.parse_args()
    if args.demo:
        return demo(args.demo, args.json, default_build=not args.skip_default_build, repeats=args.repeats,
                    chunk_after_chunk=not args.shipped_only)
    (path,) = require("bigbasket.csv")
    fresh_database("semid_bench_embed")

    import numpy as np
    from django.conf import settings

    from catalog.embeddings import _create_index, _drop_index, embed_products, similar_products
    from catalog.encoder import load_encoder
    from catalog.models import Category, Product, ProductEmbedding
    from catalog.rows import read_catalog
    from catalog.services import import_rows
    from catalog.text import product_text

    rows = read_catalog(path)[: args.limit]
    import_rows(rows=rows)
    model = load_encoder(settings.SEMID_EMBEDDING_MODEL)
    model.encode(["warm up"] * 64)
    texts = [product_text(p.as_record(), "precision") for p in Product.objects.order_by("id")]

    # Interleave: for each slice, bare encode then the whole step on the same products, so load
    # drift on this shared machine hits both sides alike; report the ratio per slice and overall.
    product_ids = list(Product.objects.order_by("id").values_list("id", flat=True))
    slices = max(1, min(args.slices, len(texts) // 500))
    bounds = [round(i * len(texts) / slices) for i in range(slices + 1)]
    bare_s = whole_s = 0.0
    ratios, rebuilt = [], False
    for a, b in zip(bounds, bounds[1:]):
        started = time.perf_counter()
        model.encode(texts[a:b], batch_size=settings.SEMID_EMBEDDING_BATCH_SIZE, normalize_embeddings=True)
        bare = time.perf_counter() - started
        started = time.perf_counter()
        result = embed_products(flavor="precision", product_ids=product_ids[a:b])
        whole = time.perf_counter() - started
        rebuilt |= result.index_rebuilt
        bare_s, whole_s = bare_s + bare, whole_s + whole
        ratios.append(bare / whole)
    print(f"texts: {len(texts)} in {slices} interleaved slices  device: {model.device}")
    print(f"bare encode:        {len(texts) / bare_s:8.1f} texts/s")
    print(f"whole embed step:   {len(texts) / whole_s:8.1f} texts/s  (index rebuilt: {rebuilt})")
    print(f"ratio whole/bare:   {bare_s / whole_s:8.3f} overall, per-slice median {statistics.median(ratios):.3f}"
          f" (min {min(ratios):.3f}, max {max(ratios):.3f}); goal >= 0.9")

    ids, vectors = zip(*ProductEmbedding.objects.filter(flavor="precision").values_list("product_id", "embedding"))
    vectors = np.vstack([np.asarray(v, dtype=np.float32) for v in vectors])
    pad = max(args.knn_products - len(ids), 0)
    if pad:
        rng = np.random.default_rng(0)
        category = Category.objects.filter(children__isnull=True).first()
        extra = Product.objects.bulk_create(
            [Product(external_id=f"PAD-{i}", name=f"pad {i}", category=category) for i in range(pad)], batch_size=5000
        )
        base = vectors[rng.integers(0, len(vectors), pad)] + rng.normal(0, 0.05, (pad, vectors.shape[1])).astype(np.float32)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        _drop_index("precision")
        ProductEmbedding.objects.bulk_create(
            [ProductEmbedding(product=p, flavor="precision", model_name="pad", text_hash="", embedding=v)
             for p, v in zip(extra, base)], batch_size=5000)
        _create_index("precision")
    total = ProductEmbedding.objects.filter(flavor="precision").count()
    probes = list(Product.objects.filter(pk__in=list(ids)).order_by("?")[: args.queries])
    similar_products(product=probes[0], flavor="precision", k=10)
    times = []
    for product in probes:
        started = time.perf_counter()
        hits = similar_products(product=product, flavor="precision", k=10)
        times.append((time.perf_counter() - started) * 1000)
        assert len(hits) == 10
    times.sort()
    print(f"kNN (k=10) over {total} vectors, {len(times)} queries: p50 {statistics.median(times):.2f} ms, "
          f"p95 {times[int(0.95 * len(times)) - 1]:.2f} ms  (goal p50 <= 10 ms at 50k)")


def demo(n: int, json_path: Path | None, *, default_build: bool = True, repeats: int = 2,
         chunk_after_chunk: bool = True) -> None:
    import json
    import os
    import tempfile
    from collections import defaultdict

    import torch

    fresh_database("semid_bench_embed")
    from django.conf import settings

    import catalog.embeddings as embeddings
    from catalog.demo import generate_demo_catalog, write_csv
    from catalog.encoder import load_encoder
    from catalog.models import Product
    from catalog.services import import_catalog
    from catalog.text import product_text

    if n <= embeddings.REBUILD_INDEX_ABOVE:
        sys.exit(f"--demo {n}: the step builds its index after the load above {embeddings.REBUILD_INDEX_ABOVE:,} "
                 "products (catalog.embeddings.REBUILD_INDEX_ABOVE), which this comparison times: use more")
    with tempfile.TemporaryDirectory() as tmp:
        write_csv(generate_demo_catalog(n_products=n, seed=0), Path(tmp) / "catalog.csv")
        import_catalog(path=Path(tmp) / "catalog.csv")
    model = load_encoder(settings.SEMID_EMBEDDING_MODEL)
    model.encode(["warm up"] * 1024, batch_size=settings.SEMID_EMBEDDING_BATCH_SIZE)
    texts = [product_text(p.as_record(), "precision") for p in Product.objects.order_by("id")]
    distinct = list(dict.fromkeys(texts))  # the step encodes each distinct text of a chunk once: so does bare
    cpu = MachineCPU().start()
    started = time.perf_counter()
    model.encode(distinct, batch_size=settings.SEMID_EMBEDDING_BATCH_SIZE, normalize_embeddings=True)
    bare = time.perf_counter() - started
    bare_cpu = cpu.seconds()

    parts = defaultdict(float)  # seconds inside each part of the step, timed around the module's own functions

    def timed(name, function):
        def wrapper(*a, **k):
            started = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                parts[name] += time.perf_counter() - started
        return wrapper

    step_cpu = []  # per shipped step: the machine's busy core-seconds, whole and of its index build

    def whole_step(overlap: bool) -> float:
        """The whole step on a table without vectors (the plan drops the index and builds it at the end);
        chunks one after another (`overlap` False: its parts timed) or read and written beside the encoder."""
        embeddings.ProductEmbedding.objects.all().delete()
        embeddings.OVERLAP_CHUNKS = overlap
        ensure_index, index_cpu = embeddings._ensure_index, []

        def metered(*a, **k):
            meter = MachineCPU().start()
            try:
                return ensure_index(*a, **k)
            finally:
                index_cpu.append(meter.seconds())

        embeddings._ensure_index = metered
        cpu = MachineCPU().start()
        started = time.perf_counter()
        try:
            result = embeddings.embed_products(flavor="precision")
        finally:
            embeddings._ensure_index = ensure_index
        seconds = time.perf_counter() - started
        if overlap:
            step_cpu.append({"step": cpu.seconds(), "index": index_cpu[0]})
        assert result.index_rebuilt and result.encoded == n, result
        return seconds

    originals = {}
    for name, attribute in [("texts", "texts_for"), ("encode", "encode_texts"), ("write", "_write_vectors"),
                            ("index", "_ensure_index")]:
        originals[attribute] = getattr(embeddings, attribute)
        setattr(embeddings, attribute, timed(name, originals[attribute]))
    one_by_one = [whole_step(overlap=False)] if chunk_after_chunk else []
    if one_by_one:
        parts["rest"] = one_by_one[0] - sum(parts.values())
    for attribute, function in originals.items():
        setattr(embeddings, attribute, function)
    overlapped = [whole_step(overlap=True)]
    for _ in range(repeats - 1):  # alternating, each way once more a round
        if chunk_after_chunk:
            one_by_one.append(whole_step(overlap=False))
        overlapped.append(whole_step(overlap=True))
    whole = statistics.median(overlapped)

    dim = embeddings.ProductEmbedding._meta.get_field("embedding").dimensions
    builds, default = {}, {"maintenance_work_mem": "64MB", "max_parallel_maintenance_workers": "2"}
    shipped = embeddings.index_build_settings(rows=n, dim=dim)
    seven = {**shipped, "max_parallel_maintenance_workers": "7"}  # PostgreSQL's default server allows 7
    for label, build in [("postgres default", default)] * default_build + [("7 workers", seven)] * (
            shipped != seven) + [("index_build_settings", shipped)]:
        embeddings._drop_index("precision")
        cpu = MachineCPU().start()
        started = time.perf_counter()
        embeddings._create_index("precision", build)
        builds[label] = {"settings": build, "seconds": round(time.perf_counter() - started, 2),
                         "cpu_core_seconds": cpu.seconds()}

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    figures = {"n": n, "distinct_texts": len(distinct), "device": device,
               "batch_size": settings.SEMID_EMBEDDING_BATCH_SIZE, "bare_encode_s": round(bare, 2),
               "whole_step_s": round(whole, 2), "ratio": round(bare / whole, 3),
               "whole_step_runs_s": [round(t, 2) for t in overlapped],
               "chunk_after_chunk_runs_s": [round(t, 2) for t in one_by_one],
               "chunk_after_chunk_ratio": round(bare / statistics.median(one_by_one), 3) if one_by_one else None,
               "parts_s": {k: round(v, 2) for k, v in parts.items()}, "index_builds": builds}
    figures["cpu"] = cpu_ceiling(bare=bare, bare_cpu=bare_cpu, steps=step_cpu, cores=os.cpu_count())
    print(f"{n:,} products ({len(distinct):,} distinct texts) on {device}, batch {figures['batch_size']}")
    print(f"bare encode {bare:.1f} s ({len(distinct) / bare:,.0f} texts/s); whole step {whole:.1f} s (median of "
          f"{[round(t, 1) for t in overlapped]}); ratio {bare / whole:.3f} (goal >= 0.9)")
    if one_by_one:
        print(f"  chunk after chunk (no threads): {statistics.median(one_by_one):.1f} s (median of "
              f"{[round(t, 1) for t in one_by_one]}); ratio {figures['chunk_after_chunk_ratio']:.3f}")
        print("  its parts: " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()))
    for label, build in builds.items():
        print(f"  index build, {label} {build['settings']}: {build['seconds']} s, "
              f"{build['cpu_core_seconds']} core-seconds of the machine")
    ceiling = figures["cpu"]
    if ceiling:
        print(f"  the machine's busy core-seconds ({ceiling['cores']} cores): bare encode {ceiling['bare']}, the step "
              f"less its index build {ceiling['step_less_index']}, its index build {ceiling['index']}; at least "
              f"{ceiling['floor_s']} s for the step on these cores, so a ratio of at most {ceiling['ratio_ceiling']}")
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1))


def cpu_ceiling(*, bare: float, bare_cpu: float | None, steps: list[dict], cores: int) -> dict | None:
    """The best ratio the machine's cores allow: the step's work (median busy core-seconds of its shipped runs,
    its index build's and the rest's) cannot be done in less than that work over the cores, nor in less than bare
    `encode`'s time (the same texts through the same model); None without /proc/stat."""
    if bare_cpu is None or not steps or any(s["step"] is None or s["index"] is None for s in steps):
        return None
    index = statistics.median(s["index"] for s in steps)
    rest = statistics.median(s["step"] - s["index"] for s in steps)
    floor = max(bare, (index + rest) / cores)
    return {"cores": cores, "bare": round(bare_cpu, 1), "index": round(index, 1), "step_less_index": round(rest, 1),
            "floor_s": round(floor, 1), "ratio_ceiling": round(bare / floor, 3)}


if __name__ == "__main__":
    main()
