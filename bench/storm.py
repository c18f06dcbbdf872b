"""Reviewers storm one queue through the production server (gunicorn, production settings): claims and
decisions per second, their latency, and the checks that no flag was claimed twice and no decision lost.

    .venv/bin/python bench/storm.py [--reviewers 32] [--flags 6000] [--seconds 60] [--workers 4] [--threads 8]

Each reviewer is a thread with its own keep-alive connection and API token, looping: POST /api/flags/claim/
(the next flag of the mislabel queue), then POST /api/flags/{id}/decide/ (accept or reject, alternating per
reviewer). The load generator runs on the same machine as the server and the database, so the figures
are for everything on these cores together. Database `semid_bench_storm` (emptied first).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _django  # noqa: E402

DATABASE = "semid_bench_storm"


def seed(flags: int, reviewers: int) -> list[str]:
    """An active run, `flags` open flags in the mislabel queue, and `reviewers` reviewers; their tokens."""
    from rest_framework.authtoken.models import Token

    from audit.models import Flag, Queue
    from catalog.models import Product
    from catalog.services import ensure_categories
    from quantizer.models import QuantizerRun
    from tests.conftest import make_user

    categories, _ = ensure_categories([("Dairy", "Cheese"), ("Pantry", "Olives")])
    cheese, olives = categories["Dairy > Cheese"], categories["Pantry > Olives"]
    run = QuantizerRun.objects.create(flavor="precision", embedding_model="m", status="succeeded", is_active=True)
    Product.objects.bulk_create(
        Product(external_id=f"P{i}", name=f"Product {i}", category=olives) for i in range(flags))
    Flag.objects.bulk_create(
        Flag(product=p, run=run, queue=Queue.MISLABEL, label=olives, suggested=cheese, confidence=0.9,
             priority=(i % 97) / 97, evidence={}, product_updated_at=p.updated_at)
        for i, p in enumerate(Product.objects.order_by("id")))
    users = [make_user(f"storm{i}", "reviewer", "storm-pass-123") for i in range(reviewers)]
    return [Token.objects.create(user=u).key for u in users]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.production", "SEMID_DB_NAME": DATABASE,
           "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1", "SECURE_COOKIES": "0",
           "SEMID_SECOND_REVIEW_SHARE": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread", "--keep-alive", "30"],
        cwd=_django.ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/schema/")
            connection.getresponse().read()
            return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    sys.exit(f"gunicorn did not answer within 60 s; see {log}")


def storm(port: int, tokens: list[str], seconds: float) -> dict:
    claims, decides = [], []  # (seconds, status) per request
    held: dict[int, int] = {}
    decided = Counter()
    problems: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(tokens) + 1)
    stop_at = [0.0]

    def post(connection, path, body, token):
        started = time.perf_counter()
        connection.request("POST", path, body=json.dumps(body),
                           headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        return time.perf_counter() - started, response.status, payload

    def reviewer(n: int, token: str):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        action = "accept" if n % 2 else "reject"
        start.wait()
        try:
            while time.monotonic() < stop_at[0]:
                took, status, payload = post(connection, "/api/flags/claim/", {"queue": "mislabel"}, token)
                with lock:
                    claims.append((took, status))
                if status == 204:
                    break  # the queue is empty
                if status != 200:
                    continue
                flag = json.loads(payload)["id"]
                with lock:
                    if held.setdefault(flag, n) != n:
                        problems.append(f"flag {flag} claimed by reviewers {held[flag]} and {n}")
                took, status, _ = post(connection, f"/api/flags/{flag}/decide/", {"action": action}, token)
                with lock:
                    decides.append((took, status))
                    if status == 201:
                        decided[flag] += 1
        except Exception as exc:  # noqa: BLE001 - reported in the figures
            with lock:
                problems.append(f"reviewer {n}: {exc!r}")

    threads = [threading.Thread(target=reviewer, args=(n, t)) for n, t in enumerate(tokens)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + seconds
    began = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    return {"elapsed": time.perf_counter() - began, "claims": claims, "decides": decides, "decided": decided,
            "problems": problems}


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviewers", type=int, default=32)
    parser.add_argument("--flags", type=int, default=6000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (gthread)")
    args = parser.parse_args()

    _django.fresh_database(DATABASE)
    tokens = seed(args.flags, args.reviewers)
    from django.db import connections

    connections.close_all()
    log = _django.ROOT / "test-artifacts" / "storm-gunicorn.log"
    log.parent.mkdir(exist_ok=True)
    port = free_port()
    server = start_server(port, args.workers, args.threads, log)
    try:
        result = storm(port, tokens, args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)

    from audit.models import Decision, Flag

    rows = Decision.objects.exclude(action__in=["comment", "undo"])
    claims_ok = [t for t, s in result["claims"] if s == 200]
    decides_ok = [t for t, s in result["decides"] if s == 201]
    statuses = Counter(s for _, s in result["claims"] + result["decides"])
    elapsed = result["elapsed"]
    figures = {
        "reviewers": args.reviewers, "server": f"gunicorn gthread {args.workers}x{args.threads}",
        "seconds": round(elapsed, 1),
        "claims_per_s": round(len(claims_ok) / elapsed, 1), "decisions_per_s": round(len(decides_ok) / elapsed, 1),
        "claim_p50_ms": round(1000 * percentile(claims_ok, 0.5), 1),
        "claim_p95_ms": round(1000 * percentile(claims_ok, 0.95), 1),
        "decide_p50_ms": round(1000 * percentile(decides_ok, 0.5), 1),
        "decide_p95_ms": round(1000 * percentile(decides_ok, 0.95), 1),
        "statuses": dict(sorted(statuses.items())),
        "5xx": sum(n for s, n in statuses.items() if s >= 500),
        "double_claims": len([p for p in result["problems"] if "claimed by" in p]),
        "decisions_answered_201": len(decides_ok), "decision_rows": rows.count(),
        "flags_decided_twice": rows.values("flag").annotate(n=__import__("django.db.models", fromlist=["Count"]).Count(
            "id")).filter(n__gt=1).count(),
        "flags_left_claimed": Flag.objects.filter(status="claimed").count(),
        "errors": result["problems"][:5],
    }
    print(json.dumps(figures, indent=1))
    lost = figures["decision_rows"] != figures["decisions_answered_201"]
    if figures["5xx"] or figures["double_claims"] or figures["flags_decided_twice"] or lost:
        sys.exit("FAILED: 5xx, a double claim, a flag decided twice or a lost decision (see above)")


if __name__ == "__main__":
    main()
