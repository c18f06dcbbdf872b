"""The contract's commands on a new SEMID_HOME: the embedded database is migrated first, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def manage(home: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEMID_HOME": str(home), "DJANGO_SETTINGS_MODULE": "config.settings.base"}
    for name in ("DATABASE_URL", "REDIS_URL", "SEMID_DB_NAME"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_commands_on_a_new_home_migrate_its_database_first(tmp_path):
    home = tmp_path / "home"
    catalog = tmp_path / "c.csv"
    catalog.write_text("external_id,name,brand,description,category_path\nP1,Oat milk,Oatly,,Dairy > Milk\n")
    try:
        export = manage(home, "export_codes", str(tmp_path / "codes.csv"))
        assert export.returncode == 1
        assert "no active run: run python manage.py pipeline first" in export.stderr
        assert "relation" not in export.stderr and "Traceback" not in export.stderr

        imported = manage(home, "import_catalog", str(catalog), "--verbosity", "0")
        assert imported.returncode == 0, imported.stderr
        assert "1 rows: 1 created" in imported.stdout
    finally:
        manage(home, "services", "stop")
