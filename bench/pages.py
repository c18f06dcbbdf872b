"""Server time of the review pages: the queue page (/) and the flag page (/flags/<id>/).

Loads the 3,000-product demo catalog with a made-up active run and 300 flags (as the UI tests
do, no training) into a throwaway database, then times 200 requests of each page through
Django's test Client and prints median / p95 and the queries per request. Goal: p95 <= 150 ms.

    .venv/bin/python bench/pages.py
    .venv/bin/python bench/pages.py --products 1000000 --requests 20

With ``--products N`` the 3,000 products, their semantic IDs and flags are copied in SQL
(``INSERT ... SELECT``, a copy of each product in the same category with a code that shares its first three
levels) until the catalog has N products and flags on 10% of them, the run's cluster summaries are rebuilt
(timed), and the cluster tree's pages (the root and a prefix of each level, 1 to 4) and a product page are
timed as well. Every run also times a search of the queue (`/?q=`) and, past 3,000 products, of the cluster
tree (`/clusters/?q=`) by a word of the products' names (the words of the first products' names in turn).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import fresh_database  # noqa: E402

REQUESTS = 200
GOAL_MS = 150.0


def timed(client, urls: list[str]) -> list[float]:
    out = []
    for url in urls:
        started = time.perf_counter()
        response = client.get(url)
        out.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return out


def report(name: str, millis: list[float], queries: int) -> str:
    ordered = sorted(millis)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    verdict = "ok" if p95 <= GOAL_MS else f"over the {GOAL_MS:.0f} ms goal"
    return (f"{name:<12} median {statistics.median(millis):6.1f} ms   p95 {p95:6.1f} ms   "
            f"{queries:2d} queries/request   ({len(millis)} requests; {verdict})")


def copy_catalog(total: int) -> None:
    """Grow the loaded catalog to `total` products: copies of each product (same category, name + copy
    number), their semantic IDs (same first three levels, the copy number as last level, the copy's product
    id as token so full IDs stay unique) and a copy of each flag on the copies. Triggers are off for the copy
    (`session_replication_role = replica`): the history triggers would log a million creations, and every
    copied reference points at a row that exists; the caller rebuilds the cluster summaries after it."""
    from django.db import connection

    from audit.models import Flag
    from catalog.models import Product
    from quantizer.models import SemanticId

    def columns(model, skip=("id",)):
        return [f.column for f in model._meta.concrete_fields if f.column not in skip]

    base = Product.objects.count()
    copies = -(-total // base) - 1
    product_cols = columns(Product, ("id", "external_id", "name"))
    sid_cols = columns(SemanticId, ("id", "product_id", "codes", "code", "token"))
    flag_cols = columns(Flag, ("id", "product_id"))
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            f"INSERT INTO catalog_product (external_id, name, {', '.join(product_cols)}) "
            f"SELECT p.external_id || '~' || r, p.name || ' ' || r, {', '.join('p.' + c for c in product_cols)} "
            f"FROM catalog_product p CROSS JOIN generate_series(1, %s) r ORDER BY r, p.id LIMIT %s", [copies, total - base])
        cursor.execute(
            "CREATE TEMP TABLE copy_of AS SELECT c.id AS new_id, o.id AS old_id, "
            "split_part(c.external_id, '~', 2)::int AS r FROM catalog_product c "
            "JOIN catalog_product o ON o.external_id = split_part(c.external_id, '~', 1) WHERE c.external_id LIKE '%~%'")
        cursor.execute("ANALYZE copy_of")  # else the planner guesses a nested loop over a million rows
        cursor.execute(
            f"INSERT INTO quantizer_semanticid (product_id, codes, code, token, {', '.join(sid_cols)}) "
            f"SELECT m.new_id, s.codes[1:3] || (m.r % 256), array_to_string(s.codes[1:3] || (m.r % 256), '_'), "
            f"m.new_id, {', '.join('s.' + c for c in sid_cols)} "
            f"FROM copy_of m JOIN quantizer_semanticid s ON s.product_id = m.old_id")
        cursor.execute(
            f"INSERT INTO audit_flag (product_id, {', '.join(flag_cols)}) "
            f"SELECT m.new_id, {', '.join('f.' + c for c in flag_cols)} "
            f"FROM copy_of m JOIN audit_flag f ON f.product_id = m.old_id")
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=3000, help="grow the catalog to this many products")
    parser.add_argument("--requests", type=int, default=REQUESTS, help="requests per page")
    args = parser.parse_args()
    fresh_database("semid_bench_pages")
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from tests.ui.conftest import build_review_data, make_reviewer

    settings.DEBUG = False
    setup_test_environment()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        data = build_review_data(Path(tmp), n_products=3000, n_flags=300)
        print(f"loaded 3000 products, {len(data['flags'])} flags in {time.perf_counter() - started:.1f} s")
    if args.products > 3000:
        from audit.models import Flag
        from catalog.models import Product
        from quantizer.clusters import rebuild_cluster_summaries
        from quantizer.models import ClusterSummary

        started = time.perf_counter()
        copy_catalog(args.products)
        print(f"copied to {Product.objects.count():,} products, {Flag.objects.count():,} flags "
              f"in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        rebuild_cluster_summaries(run=data["run"])  # the copy ran with triggers off
        print(f"cluster summaries rebuilt ({ClusterSummary.objects.filter(run=data['run']).count():,} clusters, "
              f"words included) in {time.perf_counter() - started:.1f} s", flush=True)
    client = Client()
    client.force_login(make_reviewer("bench"))
    flags = [f.pk for f in data["flags"]]
    n = args.requests
    from catalog.models import Product

    names = Product.objects.order_by("id").values_list("name", flat=True)[:200]
    words = [w for w in dict.fromkeys(w.lower() for name in names for w in name.split()) if w.isalpha() and len(w) > 3]
    pages = {
        "queue page": ["/"] * n,
        "flag page": [f"/flags/{flags[i % len(flags)]}/" for i in range(n)],
        "queue search": [f"/?q={words[i % len(words)]}" for i in range(n)],
    }
    if args.products > 3000:
        from quantizer.models import SemanticId

        sids = list(SemanticId.objects.filter(run=data["run"]).order_by("id").values_list("codes", "product_id")[:n])
        pages.update({
            "clusters /": ["/clusters/"] * n,
            "clusters L1": [f"/clusters/?prefix={c[0]}" for c, _ in sids],
            "clusters L2": [f"/clusters/?prefix={c[0]}_{c[1]}" for c, _ in sids],
            "clusters L3": [f"/clusters/?prefix={c[0]}_{c[1]}_{c[2]}" for c, _ in sids],
            "clusters L4": [f"/clusters/?prefix={'_'.join(map(str, c))}" for c, _ in sids],
            "product page": [f"/products/{p}/" for _, p in sids],
            "cluster search": [f"/clusters/?q={words[i % len(words)]}" for i in range(n)],
        })
    for name, urls in pages.items():
        timed(client, urls[: min(10, n)])  # warm up (templates, connections, caches)
        queries = []
        with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
            client.get(urls[0])
        print(report(name, timed(client, urls), len(queries)))


if __name__ == "__main__":
    main()
