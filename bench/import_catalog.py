"""Import throughput: ../shared/data/instacart.csv and bigbasket.csv, each into a fresh database.

    .venv/bin/python bench/import_catalog.py [--runs 3] [--files instacart.csv bigbasket.csv] [--statements]
    .venv/bin/python bench/import_catalog.py --files --generated 1000000 --passes fresh   # the demo generator's CSV

Per file and run: an empty database, the import (`import_catalog` = `read_catalog`, which parses and
validates every row, then `import_rows`: category checks, categories, COPY into a staging table,
set-based insert and update, history triggers), then a re-import of the same file, which changes
nothing, then the file with every product moved to the next category path (in sorted order; `overwrite`): each
row an UPDATE with its history row. Prints each run's seconds for the two parts, rows/s and the cores the machine kept busy on average meanwhile
(every process, PostgreSQL's included: `common.MachineCPU`), the median rows/s over the runs, and
the peak resident memory of the process; with --statements, where each import of the last run spent
its time, SQL statement by statement. Goal: >= 50,000 rows/s on 2 cores.
"""

import argparse
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import ROOT, fresh_database, require  # noqa: E402
from common import MachineCPU, peak_rss_mib  # noqa: E402

PASSES = ("fresh", "re-import", "moves")
TABLE = re.compile(r'"?(catalog_\w+|product_import|pghistory_\w+)"?')


class StatementTimes:
    """A connection execute wrapper: seconds per statement kind (verb and first table named)."""

    def __init__(self):
        self.seconds = Counter()

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            table = TABLE.search(sql)
            self.seconds[f"{sql.split(None, 1)[0].upper()} {table.group(1) if table else ''}"] += (
                time.perf_counter() - started)


def generated_csv(n: int) -> Path:
    """The demo generator's N products (seed 0) as a CSV in the temporary folder, written once per N."""
    import tempfile

    path = Path(tempfile.gettempdir()) / "semid-bench-import" / f"generated-{n}.csv"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        sys.path.insert(0, str(ROOT))
        from catalog.demo import generate_demo_catalog, write_csv

        partial = path.with_suffix(".partial")
        write_csv(generate_demo_catalog(n_products=n, seed=0), partial)
        partial.rename(path)
    return path


def moved_rows(rows):
    """`rows` with every product's category path the next one in sorted order: each product moves."""
    paths = sorted({row.category_path for row in rows})
    following = {path: paths[(i + 1) % len(paths)] for i, path in enumerate(paths)}
    return [row._replace(category_path=following[row.category_path]) for row in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh databases per file (median reported)")
    parser.add_argument("--files", nargs="*", default=["instacart.csv", "bigbasket.csv"], help="of ../shared/data")
    parser.add_argument("--generated", type=int, metavar="N", help="also the demo generator's N products (seed 0)")
    parser.add_argument("--passes", nargs="+", choices=PASSES, default=list(PASSES),
                        help="in this order, on one database per file and run")
    parser.add_argument("--statements", action="store_true", help="time each SQL statement of the last run")
    args = parser.parse_args()
    files = require(*args.files) if args.files else []
    if args.generated:
        files.append(generated_csv(args.generated))
    if not files:
        parser.error("nothing to import: name --files or --generated")

    print(f"{'file':<16} {'pass':<10} {'run':>3} {'rows':>7} {'read s':>7} {'write s':>7} {'rows/s':>8} {'cores':>5}"
          "  result")
    medians, breakdowns = [], []
    for path in files:
        rates = {label: [] for label in args.passes}
        for run in range(1, args.runs + 1):
            fresh_database("semid_bench_import")
            from django.db import connection

            from catalog.rows import read_catalog
            from catalog.services import import_rows

            for label in args.passes:
                times = StatementTimes()
                with connection.execute_wrapper(times):
                    cpu = MachineCPU().start()
                    started = time.perf_counter()
                    rows = read_catalog(path)
                    read = time.perf_counter() - started
                    if label == "moves":
                        rows = moved_rows(rows)
                    result = import_rows(rows=rows, overwrite=label == "moves")
                    write = time.perf_counter() - started - read
                    busy = cpu.seconds()
                rates[label].append(result.rows / (read + write))
                cores = f"{busy / (read + write):5.2f}" if busy is not None else "    -"
                print(f"{path.name:<16} {label:<10} {run:>3} {result.rows:>7} {read:>7.2f} {write:>7.2f} "
                      f"{rates[label][-1]:>8.0f} {cores}  created {result.created}, updated {result.updated}, "
                      f"unchanged {result.unchanged}", flush=True)
                if run == args.runs:
                    breakdowns.append((path.name, label, read, write, times.seconds))
        medians.append((path.name, result.rows, *(statistics.median(rates[label]) for label in args.passes)))
    header = "".join(f" {label + ' rows/s':>17}" for label in args.passes)
    print(f"\nmedian of {args.runs} run(s)\n{'file':<16} {'rows':>7}{header}")
    for name, rows, *rates_ in medians:
        print(f"{name:<16} {rows:>7}" + "".join(f" {rate:>17.0f}" for rate in rates_))
    print(f"peak memory (max RSS): {peak_rss_mib():.0f} MiB")
    if args.statements:
        for name, label, read, write, seconds in breakdowns:
            print(f"\n{name} {label}, run {args.runs}: read_catalog {read:.2f} s; import_rows {write:.2f} s, of which")
            for statement, spent in seconds.most_common():
                if spent >= 0.005:
                    print(f"  {spent:6.2f} s  {statement}")
            print(f"  {write - sum(seconds.values()):6.2f} s  the rest: Python (category checks, the COPY stream), commit")


if __name__ == "__main__":
    main()
