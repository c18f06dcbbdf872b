"""Settings read the environment and start nothing; production settings refuse an unsafe configuration."""

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


@pytest.mark.parametrize(("unset", "message"), [
    ("DATABASE_URL", "set DATABASE_URL in the environment for production"),
    ("REDIS_URL", "set REDIS_URL in the environment for production"),
])
def test_production_refuses_a_missing_url_instead_of_starting_embedded_servers(tmp_path, unset, message):
    environ = {"SECRET_KEY": secrets.token_urlsafe(50), unset: ""}
    result = start_production(tmp_path, **environ)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "postgres").exists() and not (tmp_path / "redis").exists()


def test_importing_the_settings_starts_no_server_and_reads_the_environment(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SEMID_DB_NAME"}}
    environ.update(DJANGO_SETTINGS_MODULE="config.settings.base", SEMID_HOME=str(tmp_path),
                   SEMID_LLM_URL="http://llm.example:8000/v1", SEMID_LLM_MODEL="qwen", SEMID_EMBEDDING_DIM="768")
    script = ("import django; django.setup(); from django.conf import settings as s; "
              "from catalog.models import EMBEDDING_DIM; "
              "print(s.DATABASES['default']['HOST'], s.REDIS_URL, s.SEMID_LLM_URL, s.SEMID_LLM_MODEL, EMBEDDING_DIM)")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environ, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    host, redis_url, llm_url, llm_model, dim = result.stdout.split()
    assert host == str(tmp_path / "postgres") and redis_url.startswith("redis://127.0.0.1:")
    assert (llm_url, llm_model, dim) == ("http://llm.example:8000/v1", "qwen", "768")
    assert not (tmp_path / "postgres").exists() and not (tmp_path / "redis").exists()
