"""How long a new user waits: from `make demo`'s page answering to its first flag, on a new SEMID_HOME.

Runs the checkout's `bin/demo` (its .venv must exist: `make install`) with an empty SEMID_HOME and
its own port, polls the login page until it answers, then counts flags until there is one; prints
both times and stops the demo (SIGTERM stops the server, the worker and the embedded services).

    .venv/bin/python bench/first_flags.py [--checkout PATH] [--port 8123] [--timeout 3600]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def page_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def flag_count(home: Path) -> int:
    """Flags in the demo's embedded database, read over its socket (no Django, no model: the poll
    must not slow the demo down on a 2-core machine)."""
    import psycopg

    sys.path.insert(0, str(REPO))
    from config import embedded

    settings = embedded.postgres_settings(home, "semid")
    try:
        with psycopg.connect(host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
                             dbname=settings["NAME"], connect_timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM audit_flag").fetchone()[0]
    except psycopg.Error:  # not migrated yet
        return 0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", default=str(REPO))
    p.add_argument("--port", type=int, default=8123)
    p.add_argument("--timeout", type=float, default=3600)
    args = p.parse_args(argv)
    checkout = Path(args.checkout).resolve()
    if not (checkout / ".venv/bin/python").exists():
        raise SystemExit(f"{checkout}/.venv is missing: run make install there first")
    home = Path(tempfile.mkdtemp(prefix="semid-first-flags-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SEMID_DB_NAME")}
    env.update(SEMID_HOME=str(home), PORT=str(args.port))
    log = open(home / "demo.log", "w")
    started = time.monotonic()
    demo = subprocess.Popen(["bin/demo"], cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT)
    t_page = t_flag = None
    try:
        while time.monotonic() - started < args.timeout and demo.poll() is None:
            if t_page is None and page_answers(args.port):
                t_page = time.monotonic() - started
                print(f"page answered after {t_page:.0f} s", flush=True)
            elif t_page is not None and flag_count(home) > 0:
                t_flag = time.monotonic() - started
                break
            time.sleep(2 if t_page is None else 10)
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=120)
        except subprocess.TimeoutExpired:
            demo.kill()
        log.close()
    if t_page is None or t_flag is None:
        raise SystemExit(f"no {'page' if t_page is None else 'flag'} within {args.timeout:.0f} s; see {home / 'demo.log'}")
    print(f"first flag after {t_flag:.0f} s: {t_flag - t_page:.0f} s after the page answered "
          f"(checkout {checkout}, SEMID_HOME {home}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    sys.exit(main())
