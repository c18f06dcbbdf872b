"""What a manage.py command needs before it runs: the embedded servers started (config.embedded), and a
database that is not migrated yet migrated (the embedded default, e.g. a new SEMID_HOME) or named in
one line (a configured DATABASE_URL); `analyze_tables`, `copy_objects` and `copy_arrays`, for the services' bulk
writes; and
`done_beside`, work on a thread with its own connection while a block runs."""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

# Commands of the contract (DESIGN.md section 12) and the demo's: they need the tables.
NEEDS_TABLES = {
    "import_catalog", "pipeline", "train", "export_codes", "export_audit", "evaluate", "import_baskets",
    "demo_setup", "rundemo", "createsuperuser",
}
# Commands that touch neither the database nor the broker start no server (`services stop` above all).
WITHOUT_SERVICES = {
    "help", "--help", "-h", "version", "--version", "services", "collectstatic", "spectacular", "diffsettings",
    "startapp", "startproject",
}


def prepare(command: str) -> None:
    from config.embedded import start_services

    if command not in WITHOUT_SERVICES:
        try:
            start_services()
        except RuntimeError as error:  # a port taken, a server that would not start: one line, no traceback
            raise SystemExit(f"semid: {error}") from error
    if command in NEEDS_TABLES:
        import django

        django.setup()
        ensure_migrated()


def ensure_migrated() -> None:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if not plan:
        return
    if not settings.SEMID_EMBEDDED_POSTGRES:
        raise SystemExit(f"the database has {len(plan)} unapplied migration(s): run python manage.py migrate")
    print(f"semid: applying {len(plan)} migration(s) to the embedded database first", file=sys.stderr)
    call_command("migrate", interactive=False, verbosity=0)


def analyze_tables(*models) -> None:
    """ANALYZE the tables of `models` that a bulk write just filled, so the next page's plans know their rows.
    Until autovacuum's own pass (up to a minute later) the planner has no statistics for new rows: right after a
    million-product audit the queue page's flag list took 1.4 s (this CPU, 100,000 flags without statistics),
    30 ms once analyzed (docs/performance.md)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models))


def copy_objects(model, objects) -> int:
    """Unsaved `model` instances inserted by one COPY, each field's value prepared as a save prepares it (auto_now
    and auto_now_add set; the ids are the database's and stay unset on the objects, no signals), where bulk_create
    spent 4x longer on its INSERTs' parameters: 3,000 flags 0.68 s against 0.18 s (this CPU). The number written."""
    from django.db import connection

    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    written = 0
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN") as copy:
        for obj in objects:
            copy.write_row([f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields])
            written += 1
    return written


# PostgreSQL's binary COPY: signature, flags, header extension length; after the rows, -1.
BINARY_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
BINARY_COPY_HEADER = BINARY_COPY_SIGNATURE + bytes(8)
BINARY_COPY_TRAILER = b"\xff\xff"
COPY_ARRAYS_BATCH = 100_000


def copy_arrays(table: str, columns: dict) -> int:
    """Rows given column by column (name -> an (N,) int64, float64 or bool array, or one value for every row)
    inserted by one binary COPY laid out by numpy: no text to format or parse (a million scores' text rows took
    3.9 s of Python on the GPU machine). No NULLs: leave a nullable column out for the rows that have none. The
    number of rows written."""
    import numpy as np
    from django.db import connection

    formats = {"i": ">i8", "u": ">i8", "f": ">f8", "b": "?"}
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    n = max((len(a) for a in arrays.values() if a.ndim), default=1)
    layout = [("fields", ">i2")]
    for name, values in arrays.items():
        layout += [(f"{name} length", ">i4"), (name, formats[values.dtype.kind])]
    rows = np.dtype(layout)
    names = ", ".join(connection.ops.quote_name(name) for name in arrays)
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {connection.ops.quote_name(table)} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(BINARY_COPY_HEADER)
        for start in range(0, n, COPY_ARRAYS_BATCH):
            batch = np.empty(min(COPY_ARRAYS_BATCH, n - start), rows)
            batch["fields"] = len(arrays)
            for name, values in arrays.items():
                batch[f"{name} length"] = rows[name].itemsize
                batch[name] = values[start : start + len(batch)] if values.ndim else values
            copy.write(batch.tobytes())
        copy.write(BINARY_COPY_TRAILER)
    return n


@contextmanager
def done_beside(work, *args, name: str, **kwargs):
    """`work(*args, **kwargs)` on a thread named `name` while the block runs; the block's end waits for it and
    raises its error, if any. Yields its `Future`, whose result is there after the block. The thread has its own
    connection, so it sees only committed rows: inside a transaction the work is done first, then the block
    runs."""
    from django.db import connection

    if connection.in_atomic_block:
        done = Future()
        done.set_result(work(*args, **kwargs))
        yield done
        return
    pool = ThreadPoolExecutor(1, thread_name_prefix=name)
    done = pool.submit(work, *args, **kwargs)
    try:
        yield done
    finally:
        close_threads(pool)  # waits for the work
    error = done.exception()
    if error is not None:
        raise error


def close_threads(*pools: ThreadPoolExecutor) -> None:
    """Each pool's thread closes its database connections after its last task; then the pools stop."""
    from django.db import connections

    for pool in pools:
        pool.submit(connections.close_all)
        pool.shutdown(wait=True)
