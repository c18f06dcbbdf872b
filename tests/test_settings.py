"""Production settings refuse to start with an unsafe configuration."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def start_production(tmp_path, **env) -> subprocess.CompletedProcess:
    """Import config.settings.production in a fresh interpreter (external URLs: nothing embedded starts)."""
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.production", "SEMID_HOME": str(tmp_path),
               "DATABASE_URL": "postgres://u:p@127.0.0.1:1/semid", "REDIS_URL": "redis://127.0.0.1:1/0", **env}
    environ.pop("DEBUG", None)
    return subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("key", ["", "changeme", "dev-only-insecure-key-change-me", "a" * 60,
                                 "short-but-random-k3y", "my-production-secret-" + "x1y2z3" * 8])
def test_production_refuses_a_weak_or_placeholder_secret_key(tmp_path, key):
    result = start_production(tmp_path, SECRET_KEY=key)
    assert result.returncode != 0
    assert "set SECRET_KEY in the environment for production" in result.stderr


def test_production_starts_with_a_random_key(tmp_path):
    result = start_production(tmp_path, SECRET_KEY=secrets.token_urlsafe(50))
    assert result.returncode == 0, result.stderr
