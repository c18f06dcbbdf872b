"""Server time of the review pages: the queue page (/) and the flag page (/flags/<id>/).

Loads the 3,000-product demo catalog with a made-up active run and 300 flags (as the UI tests
do, no training) into a throwaway database, then times 200 requests of each page through
Django's test Client and prints median / p95 and the queries per request. Goal: p95 <= 150 ms.

    .venv/bin/python bench/pages.py
"""

from __future__ import annotations

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


def main() -> None:
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
    client = Client()
    client.force_login(make_reviewer("bench"))
    flags = [f.pk for f in data["flags"]]
    pages = {
        "queue page": ["/"] * REQUESTS,
        "flag page": [f"/flags/{flags[i % len(flags)]}/" for i in range(REQUESTS)],
    }
    for name, urls in pages.items():
        timed(client, urls[:10])  # warm up (templates, connections, caches)
        queries = []
        with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
            client.get(urls[0])
        print(report(name, timed(client, urls), len(queries)))


if __name__ == "__main__":
    main()
