"""Where a fresh import's time goes, part by part, and which parts hold Python and which PostgreSQL (issue 18).

`import_catalog` reads and validates the whole file in Python (`read_catalog`), then `import_rows` works in
PostgreSQL: category checks, the COPY into the staging table, one INSERT (its sort by file line, the rows and
their indexes, the history rows by pghistory's statement trigger) and, at the commit, each row's deferred
foreign-key check. This times each part on its own, in one transaction that is rolled back (the INSERT under
`EXPLAIN ANALYZE`, whose plan and trigger time it prints; the key checks made due with `SET CONSTRAINTS ALL
IMMEDIATE`), on the demo generator's N products (seed 0, the CSV bench/import_catalog.py writes) or a file of
../shared/data, each part's median over --runs tries (an empty database each):

    .venv/bin/python bench/studies/import_split.py --n 1000000
    .venv/bin/python bench/studies/import_split.py --file bigbasket.csv --runs 5

The parts run one after another today: Python's read while the server waits, then the server's work while
Python waits. What a read overlapped with the server's work could reach is the larger of the two sides.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _django import fresh_database, require  # noqa: E402
from import_catalog import generated_csv  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="generated products (default a million)")
    parser.add_argument("--file", help="a catalog file of ../shared/data instead (bigbasket.csv, instacart.csv)")
    parser.add_argument("--runs", type=int, default=1, help="each part's median over this many fresh tries")
    args = parser.parse_args()
    path = require(args.file)[0] if args.file else generated_csv(args.n)
    tries, plan = [], []
    for _ in range(args.runs):
        spent, plan = one_try(path)
        tries.append(spent)
    rows = tries[0].pop("rows")
    seconds = {part: statistics.median(t[part] for t in tries) for part in tries[0]}
    print(f"{path.name}: {rows:,} products, fresh import, one transaction rolled back; medians of {args.runs}")
    for part, spent in seconds.items():
        print(f"  {spent:7.2f} s  {part}")
    print(f"  {sum(seconds.values()):7.2f} s  in all: {rows / sum(seconds.values()):,.0f} rows/s")
    print("\nthe INSERT's plan (the last try):\n  " + "\n  ".join(plan))


def one_try(path: Path) -> tuple[dict, list[str]]:
    """One import into an empty database, rolled back: {part: seconds, "rows": rows}, and the INSERT's plan."""
    fresh_database("semid_bench_import")

    import pghistory
    from django.db import connection, transaction
    from django.utils import timezone

    from catalog import services
    from catalog.rows import collector_paused, read_catalog

    seconds: dict[str, float] = {}

    def timed(part: str, work):
        started = time.perf_counter()
        result = work()
        seconds[part] = time.perf_counter() - started
        return result

    rows = timed("read_catalog (Python)", lambda: read_catalog(path))
    with collector_paused(), transaction.atomic(), pghistory.context(source="import"):
        rows = timed("category checks", lambda: services.check_category_paths(rows))
        paths = [p for p in dict.fromkeys(r.category_path for r in rows) if p]
        categories, _ = timed("categories", lambda: services.ensure_categories(paths))
        category_id = {levels: categories[services.PATH_SEPARATOR.join(levels)].pk for levels in paths}
        cursor = connection.cursor()
        columns = ", ".join(f"{name} {kind}" for name, kind in services.STAGING_COLUMNS.items())
        cursor.execute(f"CREATE TEMPORARY TABLE {services.STAGING_TABLE} ({columns}) ON COMMIT DROP")

        def copy():
            sql = f"COPY {services.STAGING_TABLE} ({', '.join(services.STAGING_COLUMNS)}) FROM STDIN"
            with cursor.copy(sql) as stream:
                for row in rows:
                    stream.write_row(services._staging_values(row, category_id[row.category_path]))

        timed("COPY into staging (both)", copy)
        now = timezone.now()

        def insert():
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + services.INSERT_SQL, [now, now])
            return [line for (line,) in cursor.fetchall()]

        plan = timed("INSERT with its history rows (PostgreSQL)", insert)
        timed("foreign-key checks at commit (PostgreSQL)", lambda: cursor.execute("SET CONSTRAINTS ALL IMMEDIATE"))
        transaction.set_rollback(True)
    seconds["rows"] = len(rows)
    return seconds, plan


if __name__ == "__main__":
    main()
