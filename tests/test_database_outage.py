"""PostgreSQL stops and comes back under a running production server (gunicorn, DEBUG on as in the
demo): requests that meet the outage answer 503 "try again" (JSON for the API, a page for the UI),
never a 500 traceback, and the first requests after the restart succeed.

The server runs on an embedded PostgreSQL of its own (a new SEMID_HOME), so the session's database is
never stopped under the other tests."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from config import embedded

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Client:
    """urllib with a cookie jar: a logged-in browser session, or an API token."""

    def __init__(self, base: str, token: str | None = None):
        self.base, self.token = base, token
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def request(self, method: str, path: str, data: dict | None = None) -> tuple[int, dict, str]:
        headers = {"Authorization": f"Token {self.token}"} if self.token else {}
        body = None
        if data is not None:
            csrf = next((c.value for c in self.jar if c.name == "csrftoken"), None)
            if csrf:
                data = {"csrfmiddlewaretoken": csrf, **data}
                headers["Referer"] = self.base + path
            body = urllib.parse.urlencode(data).encode()
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()


def answers(base: str) -> bool:
    try:
        return Client(base).request("GET", "/accounts/login/")[0] == 200
    except urllib.error.URLError:
        return False


@pytest.fixture
def server(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SEMID_DB_NAME",
                                                             "SEMID_TEST_CELERY_QUEUE", "XDG_RUNTIME_DIR"}}
    env.update(SEMID_HOME=str(home), DJANGO_SETTINGS_MODULE="config.settings.base", DEBUG="1",
               DJANGO_SUPERUSER_PASSWORD="outage-pass-1", PYTHONUNBUFFERED="1")

    def manage(*args):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    proc, log = None, open(tmp_path / "gunicorn.log", "w")
    try:
        manage("migrate", "--noinput")
        manage("createsuperuser", "--noinput", "--username", "lead", "--email", "lead@example.com")
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--threads", "4"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not answers(base):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.5)
        yield base, home, env
    finally:  # the server and this home's services go, whatever happened
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        log.close()
        embedded.stop_postgres(home)
        embedded.stop_redis(home)


def start_postgres(home: Path, env: dict) -> None:
    """Start the stopped server again the way a process of the application does (config.embedded)."""
    subprocess.run([sys.executable, "-c", f"from pathlib import Path; from config import embedded; "
                    f"embedded.start_postgres(Path({str(home)!r}))"], cwd=ROOT, env=env, check=True)


def test_requests_during_an_outage_get_503_try_again_and_the_server_reconnects_after(server):
    base, home, env = server
    api = Client(base)
    status, _, body = api.request("POST", "/api/token/", {"username": "lead", "password": "outage-pass-1"})
    assert status == 200, body
    api.token = json.loads(body)["token"]
    browser = Client(base)
    browser.request("GET", "/accounts/login/")
    status, _, _ = browser.request("POST", "/accounts/login/", {"username": "lead", "password": "outage-pass-1"})
    assert status == 200  # redirected to the queues
    for _ in range(6):  # every server thread holds a connection now
        assert api.request("GET", "/api/flags/")[0] == 200
        assert browser.request("GET", "/")[0] == 200

    assert embedded.postgres_running(home)
    assert embedded.stop_postgres(home)  # a fast shutdown: the server threads' open connections do not hold it
    assert not embedded.postgres_running(home)

    status, headers, body = api.request("GET", "/api/flags/")
    assert status == 503, body[:500]
    assert headers["Retry-After"] and "try again" in json.loads(body)["detail"]
    status, _, body = api.request("POST", "/api/flags/1/decide/", {"action": "accept"})
    assert status == 503 and "Nothing was saved" in json.loads(body)["detail"]
    status, _, page = browser.request("GET", "/")
    assert status == 503 and "Traceback" not in page
    assert "try again" in page and re.search(r'http-equiv="refresh"', page)  # a page view reloads itself
    status, _, page = browser.request("POST", "/flags/1/decide/", {"action": "accept"})
    assert status == 503 and "Nothing was saved" in page and "refresh" not in page  # a form post is not repeated

    start_postgres(home, env)
    statuses = [api.request("GET", "/api/flags/")[0] for _ in range(8)] + [browser.request("GET", "/")[0]
                                                                            for _ in range(8)]
    assert statuses == [200] * 16
