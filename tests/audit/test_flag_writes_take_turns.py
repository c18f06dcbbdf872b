"""Two audits writing flags at once (one per flavor, on two workers) take turns: the second waits for the first's
commit, so it sees the first's flags and joins them (one flag per product) instead of raising a second one."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import connection

from audit.runs import FLAG_WRITE_LOCK, _write_flags
from tests.ui.conftest import build_review_data


@pytest.mark.django_db(transaction=True)
def test_a_flag_write_waits_for_the_one_under_way(tmp_path):
    data = build_review_data(tmp_path, n_products=30, n_flags=3)
    other = psycopg.connect(**{k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"},
                            autocommit=True)
    other.execute("SELECT pg_advisory_lock(%s)", [FLAG_WRITE_LOCK])  # another audit's flag write, under way
    done, failed = threading.Event(), []

    def write():
        try:
            _write_flags(run=data["run"], flagged=[])
        except Exception as exc:  # reported to the test below
            failed.append(exc)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert not done.wait(1.5), "the flag write did not wait for the other one"
    finally:
        other.execute("SELECT pg_advisory_unlock(%s)", [FLAG_WRITE_LOCK])
        other.close()
    assert done.wait(10) and not failed, failed
    thread.join()
