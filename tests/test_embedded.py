"""The embedded PostgreSQL+pgvector and Redis: data survives a restart, stop is clean, and two
homes run side by side. Each test uses its own SEMID_HOME, so the suite's servers are untouched."""

import psycopg
import redis

from config import embedded


def connect(settings: dict) -> psycopg.Connection:
    return psycopg.connect(host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
                           dbname=settings["NAME"], autocommit=True)


def test_vectors_survive_a_restart_of_the_embedded_database(tmp_path):
    home = tmp_path / "home"
    try:
        with connect(embedded.postgres_settings(home, "survive")) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, v vector(3))")
            conn.execute("INSERT INTO items VALUES (1, '[1,2,3]')")

        assert embedded.stop_postgres(home) is True
        assert embedded.stop_postgres(home) is False  # already stopped

        with connect(embedded.postgres_settings(home, "survive")) as conn:
            assert conn.execute("SELECT v::text FROM items WHERE id = 1").fetchone()[0] == "[1,2,3]"
            nearest = conn.execute("SELECT id FROM items ORDER BY v <=> '[1,2,2.9]' LIMIT 1").fetchone()[0]
            assert nearest == 1
    finally:
        embedded.stop_postgres(home)


def test_redis_keeps_its_data_across_a_restart_and_two_homes_do_not_collide(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    try:
        url_a, url_b = embedded.redis_url(first), embedded.redis_url(second)
        assert url_a != url_b
        redis.Redis.from_url(url_a).set("who", "a")
        redis.Redis.from_url(url_b).set("who", "b")
        assert redis.Redis.from_url(url_a).get("who") == b"a"

        assert embedded.stop_redis(first) is True
        assert embedded.redis_url(first) == url_a  # same port again
        assert redis.Redis.from_url(url_a).get("who") == b"a"
        assert redis.Redis.from_url(url_b).get("who") == b"b"
    finally:
        embedded.stop_redis(first)
        embedded.stop_redis(second)


def test_two_homes_run_two_postgres_servers_side_by_side(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    try:
        a, b = embedded.postgres_settings(first, "one"), embedded.postgres_settings(second, "two")
        assert a["HOST"] != b["HOST"]
        with connect(a) as conn_a, connect(b) as conn_b:
            conn_a.execute("CREATE TABLE only_in_a (x int)")
            assert conn_b.execute("SELECT to_regclass('only_in_a')").fetchone()[0] is None
    finally:
        embedded.stop_postgres(first)
        embedded.stop_postgres(second)
