"""The web process's memory under a stream of API requests: its resident size after each block of requests,
per kind of request, so a kind that makes it grow stands out.

    SEMID_HOME=/tmp/semid-mem .venv/bin/python manage.py demo_setup
    SEMID_HOME=/tmp/semid-mem .venv/bin/python manage.py pipeline --flavor precision
    SEMID_HOME=/tmp/semid-mem .venv/bin/python bench/web_memory.py [--server runserver|gunicorn]
        [--requests 400] [--concurrency 8] [--kinds assign,similar,lists]

The server is the demo's (`manage.py runserver`, DEBUG on) or gunicorn (2 workers x 8 threads, memory
summed over its processes), on the catalog of SEMID_HOME with an active precision run; the reviewer
`reviewer` of the demo calls the API with a token. `--checkout` runs another checkout's code (to compare
two versions on one database).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def resident_mib(process: psutil.Process) -> float:
    processes = [process, *process.children(recursive=True)]
    return sum(p.memory_info().rss for p in processes if p.is_running()) / 2**20


def shell(checkout: Path, code: str) -> str:
    return subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=checkout, check=True,
                          capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, default=ROOT)
    parser.add_argument("--server", choices=["runserver", "gunicorn"], default="runserver")
    parser.add_argument("--requests", type=int, default=400, help="per kind")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--kinds", default="lists,similar,assign")
    args = parser.parse_args()
    if not os.environ.get("SEMID_HOME"):
        sys.exit("set SEMID_HOME to a home with the demo catalog and a trained precision run (see --help)")

    token, products = json.loads(shell(args.checkout, (
        "import json; from rest_framework.authtoken.models import Token; from django.contrib.auth.models import User;"
        "from catalog.models import Product;"
        "print(json.dumps([Token.objects.get_or_create(user=User.objects.get(username='reviewer'))[0].key,"
        " list(Product.objects.values_list('id', flat=True)[:2000])]))")).splitlines()[-1])
    port = free_port()
    env = {**os.environ, "DEBUG": "1", "PYTHONUNBUFFERED": "1"}
    command = ([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
               if args.server == "runserver" else
               [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
                "--workers", "2", "--threads", "8"])
    server = subprocess.Popen(command, cwd=args.checkout, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    process = psutil.Process(server.pid)
    rng = random.Random(0)
    words = ["olive", "feta", "oat", "milk", "tea", "rice", "bar", "protein", "spicy", "organic", "500 g", "1 l"]
    kinds = {
        "lists": lambda: ("GET", rng.choice(["/api/flags/?page_size=50", "/api/products/?search=a",
                                             "/api/semantic-ids/?prefix=1", "/api/queues/", "/api/runs/"]), None),
        "similar": lambda: ("GET", f"/api/products/{rng.choice(products)}/similar/?k=20", None),
        "assign": lambda: ("POST", "/api/semantic-ids/assign/",
                           {"name": " ".join(rng.sample(words, 3)), "brand": rng.choice(["Acme", "Divina", ""])}),
    }
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=5).request("GET", "/accounts/login/")
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("the server did not answer within 60 s")
                time.sleep(0.5)
        time.sleep(1)
        print(f"server: {args.server} ({args.checkout}), {args.concurrency} clients at once")
        print("| requests | kind | resident MiB | statuses |\n|---|---|---|---|")
        print(f"| 0 | (started) | {resident_mib(process):.0f} | |")
        done = 0
        for kind in args.kinds.split(","):
            statuses: dict[int, int] = {}
            lock = threading.Lock()
            todo = iter(range(args.requests))

            def client():
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                for _ in todo:
                    method, path, body = kinds[kind]()
                    connection.request(method, path, body=json.dumps(body) if body else None,
                                       headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                    with lock:
                        statuses[response.status] = statuses.get(response.status, 0) + 1

            threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            done += args.requests
            print(f"| {done} | {kind} | {resident_mib(process):.0f} | {dict(sorted(statuses.items()))} |")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
