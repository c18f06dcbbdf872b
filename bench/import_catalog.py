"""Import throughput: ../shared/data/instacart.csv and bigbasket.csv into a fresh database.

    .venv/bin/python bench/import_catalog.py

Prints rows/s of `import_catalog` (validation + category tree + bulk writes + history
triggers) and the peak resident memory of the process. Goal: >= 5,000 rows/s on 2 cores.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import fresh_database, require  # noqa: E402
from common import peak_rss_mib  # noqa: E402


def main():
    files = require("instacart.csv", "bigbasket.csv")
    fresh_database("semid_bench_import")
    from catalog.services import import_catalog

    print(f"{'file':<16} {'rows':>8} {'seconds':>8} {'rows/s':>8}  pass")
    for path in files:
        for label in ("fresh", "re-import"):
            started = time.perf_counter()
            result = import_catalog(path=path)
            seconds = time.perf_counter() - started
            print(f"{path.name:<16} {result.rows:>8} {seconds:>8.2f} {result.rows / seconds:>8.0f}  {label}"
                  f" (created {result.created}, unchanged {result.unchanged})")
    print(f"peak memory (max RSS): {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
