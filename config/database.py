"""Before a command that reads the catalog: a database that is not migrated yet is migrated (the
embedded default, e.g. a new SEMID_HOME) or named in one line (a configured DATABASE_URL)."""

from __future__ import annotations

import os
import sys

# Commands of the contract (DESIGN.md section 12) and the demo's: they need the tables.
NEEDS_TABLES = {
    "import_catalog", "pipeline", "train", "export_codes", "export_audit", "evaluate", "import_baskets",
    "demo_setup", "rundemo", "createsuperuser",
}


def ensure_migrated() -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if not plan:
        return
    if os.environ.get("DATABASE_URL"):
        raise SystemExit(f"the database has {len(plan)} unapplied migration(s): run python manage.py migrate")
    print(f"semid: applying {len(plan)} migration(s) to the embedded database first", file=sys.stderr)
    call_command("migrate", interactive=False, verbosity=0)
