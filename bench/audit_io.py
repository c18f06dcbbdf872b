"""An audit's work around the scorer (`audit.runs.run_audit`): reading the products it needs, the flags' cluster
evidence, writing every product's score and the flags, side by side with the ways they replaced (kept here as
the reference: the ORM, a scan of every code per flag), on N generated products with stand-in scores and
codes. Both sides must give the same evidence and store the same rows; median of --repeats, alternating.

    .venv/bin/python bench/audit_io.py [--n 100000] [--flagged 0.05] [--repeats 2] [--json PATH]
    .venv/bin/python bench/audit_io.py --evidence-only --n 1000000 --sample 200   # the evidence alone, no database
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _django  # noqa: E402


def orm_products(ids):
    from catalog.models import Product

    return Product.objects.in_bulk(ids)


def datetime_products(_ids):
    """audit_products as it was: the version read as a datetime a product."""
    from catalog.models import Product

    rows = Product.objects.values_list("pk", "external_id", "name", "brand", "category_id", "updated_at")
    return {row[0]: row for row in rows.iterator(chunk_size=20_000)}


def bulk_create_scores(*, run, ids, products, scores, confidence, flagged) -> None:
    """_write_scores as it was: Score objects through bulk_create, 5,000 a statement."""
    from django.db import transaction

    from audit.models import Score

    with transaction.atomic():
        Score.objects.filter(run=run).delete()
        rows = [
            Score(run=run, product_id=pk, label_id=products[pk].category_id, suggested_id=int(scores.suggested[i]),
                  confidence=float(min(max(confidence[i], 0.0), 1.0)) if products[pk].category_id else 1.0,
                  raw_score=float(scores.raw_score[i]), flagged=pk in flagged)
            for i, pk in enumerate(ids.tolist())
        ]
        Score.objects.bulk_create(rows, batch_size=5000)


def one_by_one_flags(*, run, flagged) -> None:
    """_write_flags' creation as it was, for a run without flags: one INSERT a flag."""
    from django.db import transaction

    from audit.models import Flag, Queue
    from audit.runs import queue_priority

    with transaction.atomic():
        for product, suggested, confidence, evidence, unlabelled, suggested_prob in flagged:
            Flag.objects.create(
                product_id=product.pk, run=run, queue=Queue.UNCATEGORIZED if unlabelled else Queue.MISLABEL,
                label_id=product.category_id, suggested_id=suggested, confidence=min(max(confidence, 0.0), 1.0),
                priority=queue_priority(confidence=confidence, suggested_prob=suggested_prob, unlabelled=unlabelled),
                evidence=evidence.to_json(), evidence_signature=evidence.signature(suggested),
                product_updated_at=product.updated_at)


def bulk_create_flags(*, run, flagged) -> None:
    """_write_flags' creation as it was next, for a run without flags: Flag objects through bulk_create, 2,000 a
    statement."""
    from django.db import transaction

    from audit.models import Flag, Queue
    from audit.runs import queue_priority

    with transaction.atomic():
        Flag.objects.bulk_create([
            Flag(product_id=product.pk, run=run, queue=Queue.UNCATEGORIZED if unlabelled else Queue.MISLABEL,
                 label_id=product.category_id, suggested_id=suggested, confidence=min(max(confidence, 0.0), 1.0),
                 priority=queue_priority(confidence=confidence, suggested_prob=suggested_prob, unlabelled=unlabelled),
                 evidence=evidence.to_json(), evidence_signature=evidence.signature(suggested),
                 product_updated_at=product.updated_at)
            for product, suggested, confidence, evidence, unlabelled, suggested_prob in flagged], batch_size=2000)


def stand_in_evidence(products, ids, i: int):
    """A flag's evidence of the size an audit writes (about 1.8 kB of JSON): its cluster, 8 neighbours, 3
    suggestions, 4 signals."""
    from audit.evidence import Cluster, Evidence, Neighbour

    others = [products[int(ids[(i + k) % len(ids)])] for k in range(1, 9)]
    path = "Bakery > Cookies & Biscuits > Crackers"
    return Evidence(cluster=Cluster(prefix="40_10", level=2, size=5, composition=((path, 4), ("Bakery", 1))),
                    neighbours=tuple(Neighbour(product=o.pk, external_id=o.external_id, name=o.name, label=path,
                                               similarity=0.8 - 0.01 * k) for k, o in enumerate(others)),
                    suggestions=((path, 0.9753), ("Pantry > Breakfast > Cereal", 0.0086), ("Bakery", 0.0008)),
                    signals={"knn": 0.0036, "codes": 0.0002, "brand_out": 0.0007, "classifier": 0.0017})


def stand_in_codes(rng, n: int) -> np.ndarray:
    """Codes shaped like a trained run's at this size (bench/assign_io.py's): 4 levels, most level-2 clusters a
    few dozen products."""
    return np.stack([rng.integers(0, 64, n), rng.integers(0, 16, n), rng.integers(0, 16, n),
                     rng.integers(0, 4, n)], 1)


def evidence_only(n: int, sample: int) -> None:
    """Seconds a flag of the cluster evidence, scanning N codes per flag against the codes grouped once."""
    sys.path.insert(0, str(_django.ROOT))  # the app's audit package, not bench/audit.py
    from audit.core import CodePrefixes, cluster_evidence

    rng = np.random.default_rng(0)
    codes, labels = stand_in_codes(rng, n), rng.integers(0, 500, n)
    rows = rng.choice(n, sample, replace=False)
    started = time.perf_counter()
    scanned = [cluster_evidence(codes, labels, int(i)) for i in rows]
    scan = (time.perf_counter() - started) / sample
    started = time.perf_counter()
    prefixes = CodePrefixes(codes)
    build = time.perf_counter() - started
    started = time.perf_counter()
    grouped = [cluster_evidence(codes, labels, int(i), prefixes=prefixes) for i in rows]
    each = (time.perf_counter() - started) / sample
    assert scanned == grouped
    print(f"{n:,} codes, {sample} flags: scan {1000 * scan:.1f} ms a flag; grouped: {build:.2f} s once, then "
          f"{1000 * each:.3f} ms a flag")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--flagged", type=float, default=0.05, help="share of products flagged")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--evidence-only", action="store_true", help="only the cluster evidence, no database")
    parser.add_argument("--sample", type=int, default=200, help="flags timed with --evidence-only")
    args = parser.parse_args()
    if args.evidence_only:
        return evidence_only(args.n, args.sample)
    _django.fresh_database("semid_bench_audit_io")
    from audit.core import CodePrefixes, cluster_evidence
    from audit.models import Flag, Score
    from audit.runs import _write_flags, _write_scores, audit_products
    from catalog.models import Category
    from quantizer.models import QuantizerRun

    ids = _django.import_generated_catalog(args.n)
    rng = np.random.default_rng(0)
    leaves = np.array(list(Category.objects.filter(children__isnull=True).values_list("id", flat=True)))
    scores = SimpleNamespace(suggested=rng.choice(leaves, len(ids)), raw_score=rng.normal(size=len(ids)))
    confidence = rng.random(len(ids))
    chosen = np.sort(rng.choice(len(ids), int(args.flagged * len(ids)), replace=False))

    codes = stand_in_codes(rng, len(ids))
    labels = rng.choice(leaves, len(ids))

    def evidence_scan():
        return [cluster_evidence(codes, labels, int(i)) for i in chosen]

    def evidence_grouped():
        prefixes = CodePrefixes(codes)
        return [cluster_evidence(codes, labels, int(i), prefixes=prefixes) for i in chosen]

    seconds: dict[str, list[float]] = {k: [] for k in (
        "products, whole rows", "products, audit fields as datetimes", "products, audit fields", "evidence, scan",
        "evidence, grouped", "scores, bulk_create", "scores, COPY",
        "flags, one INSERT each", "flags, bulk_create", "flags, COPY")}
    def stored_scores(run):
        return list(Score.objects.filter(run=run).order_by("product_id").values_list(
            "product_id", "label_id", "suggested_id", "confidence", "raw_score", "flagged"))

    def stored_flags(run):
        return list(Flag.objects.filter(run=run).order_by("id").values_list(
            "product_id", "queue", "label_id", "suggested_id", "confidence", "priority", "evidence",
            "evidence_signature", "product_updated_at", "status"))

    runs, stored = {}, {}
    for _ in range(args.repeats):
        loaded = {}
        for label, read in [("products, whole rows", orm_products), ("products, audit fields as datetimes",
                                                                       datetime_products),
                            ("products, audit fields", lambda _: audit_products())]:
            started = time.perf_counter()
            loaded[label] = read(ids.tolist())
            seconds[label].append(time.perf_counter() - started)
        products = loaded["products, audit fields"]
        as_datetimes = {pk: (*p[:5], p.updated_at) for pk, p in products.items()}
        assert as_datetimes == loaded["products, audit fields as datetimes"]
        evidence = {}
        for label, build in [("evidence, scan", evidence_scan), ("evidence, grouped", evidence_grouped)]:
            started = time.perf_counter()
            evidence[label] = build()
            seconds[label].append(time.perf_counter() - started)
        assert evidence["evidence, scan"] == evidence["evidence, grouped"]
        flagged = [(products[int(ids[i])], int(scores.suggested[i]), float(confidence[i]),
                    stand_in_evidence(products, ids, int(i)), False, float(confidence[i])) for i in chosen]
        flagged_ids = {f[0].pk for f in flagged}
        for label, write in [("scores, bulk_create", bulk_create_scores), ("scores, COPY", _write_scores)]:
            runs[label] = QuantizerRun.objects.create(flavor="precision", embedding_model="stand-in")
            started = time.perf_counter()
            write(run=runs[label], ids=ids, products=products, scores=scores, confidence=confidence,
                  flagged=flagged_ids)
            seconds[label].append(time.perf_counter() - started)
        # one live flag a product across runs: each side starts with no flags (the other side's would merge)
        for label, write in [("flags, one INSERT each", one_by_one_flags), ("flags, bulk_create", bulk_create_flags),
                             ("flags, COPY", _write_flags)]:
            Flag.objects.all().delete()
            runs[label] = QuantizerRun.objects.create(flavor="precision", embedding_model="stand-in")
            started = time.perf_counter()
            write(run=runs[label], flagged=flagged)
            seconds[label].append(time.perf_counter() - started)
            stored[label] = stored_flags(runs[label])

    assert stored_scores(runs["scores, bulk_create"]) == stored_scores(runs["scores, COPY"])
    assert stored["flags, one INSERT each"] == stored["flags, bulk_create"] == stored["flags, COPY"]
    medians = {label: round(statistics.median(times), 2) for label, times in seconds.items()}
    print(f"{len(ids):,} products, {len(chosen):,} flagged, median of {args.repeats} (the same rows stored on "
          "both sides):")
    for label, median in medians.items():
        print(f"  {label:<24} {median:7.2f} s   runs {[round(t, 2) for t in seconds[label]]}")
    print(f"  reading products: {medians['products, whole rows'] / medians['products, audit fields']:.1f}x; "
          f"cluster evidence: {medians['evidence, scan'] / medians['evidence, grouped']:.1f}x; "
          f"writing scores: {medians['scores, bulk_create'] / medians['scores, COPY']:.1f}x; "
          f"creating flags: {medians['flags, one INSERT each'] / medians['flags, COPY']:.1f}x "
          f"({medians['flags, bulk_create'] / medians['flags, COPY']:.1f}x over bulk_create)")
    if args.json:
        args.json.write_text(json.dumps({"n": len(ids), "flagged": len(chosen), "median_s": medians,
                                         "runs_s": seconds}, indent=1))


if __name__ == "__main__":
    main()
