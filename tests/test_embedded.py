"""The embedded PostgreSQL+pgvector and Redis: settings only say where they are, a process starts them;
data survives a restart, stop is clean, and two homes run side by side. Each test uses its own
SEMID_HOME, so the suite's servers are untouched."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from config import embedded

ROOT = Path(__file__).resolve().parents[1]


def connect(settings: dict) -> psycopg.Connection:
    return psycopg.connect(host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
                           dbname=settings["NAME"], autocommit=True)


def test_settings_of_a_home_start_nothing_and_are_where_the_servers_start(tmp_path):
    home = tmp_path / "home"
    settings, url = embedded.postgres_settings(home, "where"), embedded.redis_url(home)
    assert not embedded.postgres_running(home) and not (home / "redis" / "redis.pid").exists()
    try:
        assert embedded.start_postgres(home, "where") == settings
        assert embedded.start_redis(home) == url
        with connect(settings) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == "where"
        assert redis.Redis.from_url(url).ping()
    finally:
        embedded.stop_postgres(home)
        embedded.stop_redis(home)


def test_a_new_home_server_allows_one_parallel_worker_a_core_from_its_first_start(tmp_path, monkeypatch):
    assert embedded.server_settings(2) == {"max_worker_processes": 8, "max_parallel_workers": 8}  # the defaults
    assert embedded.server_settings(16) == {"max_worker_processes": 18, "max_parallel_workers": 16}
    monkeypatch.setattr(embedded.os, "cpu_count", lambda: 16)  # a GPU machine's cores
    home = tmp_path / "home"
    show = "SELECT current_setting('max_worker_processes'), current_setting('max_parallel_workers')"
    try:
        with connect(embedded.start_postgres(home, "workers")) as conn:
            assert conn.execute(show).fetchone() == ("18", "16")
        embedded.stop_postgres(home)
        with connect(embedded.start_postgres(home, "workers")) as conn:  # written once, read at every start
            assert conn.execute(show).fetchone() == ("18", "16")
    finally:
        embedded.stop_postgres(home)


def test_vectors_survive_a_restart_of_the_embedded_database(tmp_path):
    home = tmp_path / "home"
    try:
        with connect(embedded.start_postgres(home, "survive")) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, v vector(3))")
            conn.execute("INSERT INTO items VALUES (1, '[1,2,3]')")

        assert embedded.stop_postgres(home) is True
        assert embedded.stop_postgres(home) is False  # already stopped

        with connect(embedded.start_postgres(home, "survive")) as conn:
            assert conn.execute("SELECT v::text FROM items WHERE id = 1").fetchone()[0] == "[1,2,3]"
            nearest = conn.execute("SELECT id FROM items ORDER BY v <=> '[1,2,2.9]' LIMIT 1").fetchone()[0]
            assert nearest == 1
    finally:
        embedded.stop_postgres(home)


def test_redis_keeps_its_data_across_a_restart_and_two_homes_do_not_collide(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    try:
        url_a, url_b = embedded.start_redis(first), embedded.start_redis(second)
        assert url_a != url_b
        redis.Redis.from_url(url_a).set("who", "a")
        redis.Redis.from_url(url_b).set("who", "b")
        assert redis.Redis.from_url(url_a).get("who") == b"a"

        assert embedded.stop_redis(first) is True
        assert embedded.start_redis(first) == url_a  # same port again
        assert redis.Redis.from_url(url_a).get("who") == b"a"
        assert redis.Redis.from_url(url_b).get("who") == b"b"
    finally:
        embedded.stop_redis(first)
        embedded.stop_redis(second)


def test_redis_ports_stay_below_the_ephemeral_range(tmp_path):
    ports = {embedded.redis_port(tmp_path / f"home-{i}") for i in range(2000)}
    assert len(ports) > 1800  # homes spread over the range
    assert min(ports) >= 20000 and max(ports) < 32768  # never where the kernel hands out client ports


def test_redis_port_taken_by_another_program_is_named(tmp_path):
    home = tmp_path / "home"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", embedded.redis_port(home)))
        squatter.listen()
        with pytest.raises(RuntimeError, match=f"port {embedded.redis_port(home)}.*taken by another program"):
            embedded.start_redis(home)


def test_two_homes_run_two_postgres_servers_side_by_side(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    try:
        a, b = embedded.start_postgres(first, "one"), embedded.start_postgres(second, "two")
        assert a["HOST"] != b["HOST"]
        with connect(a) as conn_a, connect(b) as conn_b:
            conn_a.execute("CREATE TABLE only_in_a (x int)")
            assert conn_b.execute("SELECT to_regclass('only_in_a')").fetchone()[0] is None
    finally:
        embedded.stop_postgres(first)
        embedded.stop_postgres(second)


def test_a_celery_worker_on_a_new_home_starts_the_servers_it_uses(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SEMID_DB_NAME",
                                                             "SEMID_TEST_CELERY_QUEUE", "XDG_RUNTIME_DIR"}}
    env.update(SEMID_HOME=str(home), DJANGO_SETTINGS_MODULE="config.settings.base")
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "-Q", "new-home", "-n", "new-home@%h"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while not (embedded.postgres_running(home) and "Connected to redis://" in log.read_text()):
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        assert redis.Redis.from_url(embedded.redis_url(home)).ping()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        embedded.stop_postgres(home)
        embedded.stop_redis(home)
