"""Set up Django against a throwaway benchmark database (embedded server unless DATABASE_URL)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SEMID_DATA_DIR", ROOT.parent / "shared" / "data"))


def require(*names: str) -> list[Path]:
    paths = [DATA / n for n in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        sys.exit(f"{', '.join(missing)} not found: benchmarks read ../shared/data by path (or set SEMID_DATA_DIR)")
    return paths


def _connect(name: str) -> None:
    """Start the embedded servers where no URL is set (database `name` included) and set Django up on it."""
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.base"
    os.environ["SEMID_DB_NAME"] = name
    import django

    from config.embedded import start_services

    start_services()
    django.setup()


def use_database(name: str) -> None:
    """Point Django at database `name` as it is (migrated to today's schema)."""
    from django.core.management import call_command

    _connect(name)
    call_command("migrate", verbosity=0)


def fresh_database(name: str) -> None:
    """Point Django at database `name`, empty it and migrate."""
    _connect(name)
    from django.core.management import call_command
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    call_command("migrate", verbosity=0)


def import_generated_catalog(n: int, seed: int = 0):
    """The demo generator's N products imported (``import_catalog``) into the database set up above; their ids,
    ascending, as an int64 array."""
    import tempfile

    import numpy as np

    from catalog.demo import generate_demo_catalog, write_csv
    from catalog.models import Product
    from catalog.services import import_catalog

    with tempfile.TemporaryDirectory() as tmp:
        write_csv(generate_demo_catalog(n_products=n, seed=seed), Path(tmp) / "catalog.csv")
        import_catalog(path=Path(tmp) / "catalog.csv")
    return np.array(list(Product.objects.order_by("id").values_list("id", flat=True)), dtype=np.int64)
