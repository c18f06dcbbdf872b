# semid: `make demo` runs the application, `make test` runs the whole test suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export SEMID_HOME ?= $(CURDIR)/.semid

.PHONY: demo test install chromium services-stop clean

# torch first, pinned: the CPU wheel lies on this machine's disk; an unpinned torch
# would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

demo: install
	PORT=$(PORT) bin/demo

test: install chromium
	$(PY) -m pytest

services-stop: install
	$(PY) manage.py services stop

clean:
	rm -rf $(VENV) .semid test-artifacts
