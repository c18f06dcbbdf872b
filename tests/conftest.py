"""Session fixtures: the real PostgreSQL+pgvector (embedded unless DATABASE_URL is set),
the real Redis, and one real Celery worker process bound to the test database."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def embedded_services():
    """The embedded PostgreSQL and Redis of SEMID_HOME (those whose URL is unset), started once: importing
    the settings starts nothing."""
    from config.embedded import start_services

    start_services()


@pytest.fixture(scope="session")
def django_db_setup(embedded_services, django_db_setup):  # in this order: the servers, then the test database
    return django_db_setup


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """One real worker for the session, bound to the test database and to a queue of its own,
    so a worker of another test session or of `make demo` never takes these tasks."""
    from config.celery import app

    queue = f"semid-test-{os.getpid()}"
    app.conf.task_default_queue = queue  # this process (and the live server in it) sends there
    proc = spawn_worker(queue, f"test-{os.getpid()}", ARTIFACTS / "celery-worker.log")
    yield proc
    stop_worker(proc)


def stop_worker(proc: subprocess.Popen) -> None:
    """Let a worker finish its task and exit; kill it after 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def spawn_worker(queue: str, name: str, log_path: Path, queues: list[str] | None = None,
                 **extra_env) -> subprocess.Popen:
    """A real Celery worker process on `queue` and its short-job queue (or on `queues`), bound to the test
    database; returns once it answers a ping."""
    from django.conf import settings

    from config.celery import app

    hostname = f"{name}@{os.uname().nodename}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "SEMID_DB_NAME": settings.DATABASES["default"]["NAME"],
        "PYTHONUNBUFFERED": "1",
        "SEMID_TEST_CELERY_QUEUE": queue,
        **extra_env,
    }
    log_path.parent.mkdir(exist_ok=True)
    with open(log_path, "w") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "-Q", ",".join(queues or [queue, f"{queue}-short"]),
             "--hostname", hostname],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while not app.control.ping(timeout=0.5, destination=[hostname]):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"celery worker did not start; see {log_path}")
    return proc


@pytest.fixture
def worker(celery_worker_process, transactional_db):
    """Use in tests whose work runs on the worker: their rows must be committed to be seen."""
    return celery_worker_process


@pytest.fixture
def second_worker(worker):
    """Another real worker on the session worker's queue: the two share a fanned-out job's chunks."""
    from config.celery import app

    proc = spawn_worker(app.conf.task_default_queue, f"second-{os.getpid()}", ARTIFACTS / "celery-second.log")
    yield proc
    stop_worker(proc)


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@contextlib.contextmanager
def row_held(queryset, pk):
    """While the block runs, another connection holds the row `pk` of `queryset` (SELECT ... FOR UPDATE in an
    open transaction), as a reviewer's decision in flight does. Needs the `transactional_db` fixture."""
    from django.db import connection, transaction

    locked, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                queryset.select_for_update().get(pk=pk)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10), "the other transaction never took the row"
        yield
    finally:
        release.set()
        holder.join(30)


def make_user(username: str, role: str, password: str, **extra):
    """A user in one of the two roles (accounts.roles)."""
    from django.contrib.auth.models import User

    from accounts.roles import ensure_roles

    user = User.objects.create_user(username, password=password, **extra)
    user.groups.add(ensure_roles()[role])
    return user


@pytest.fixture
def admin_user(db):
    return make_user("ada", "admin", "admin-pass-123", is_staff=True)


@pytest.fixture
def reviewer_user(db):
    return make_user("rita", "reviewer", "review-pass-123")


# --- the browser: one Chromium for the whole session (a second session browser, started while the first
# one's event loop runs, fails), a fresh context per test -------------------------------------------------

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (or make chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, live_server):
    """Factory of pages, each in its own browser context (its own cookies: its own user)."""
    contexts = []

    def make():
        context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()
