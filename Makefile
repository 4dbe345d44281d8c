# tracefin: every target bootstraps what it needs (virtualenv, Python and node packages).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: bootstrap native services lint test test-fast demo bench contracts clean lock audit

bootstrap: $(VENV)/.installed node_modules/.installed native

# The hot modules of the pure core compiled with mypyc (scripts/build_native.py; the list is in
# tracefin/native.py), in place beside their source: a C compiler and Python's headers are
# needed (lint and audit do without). Rebuilt only when a source of the package, the module
# list, mypy or Python changed. `NATIVE=0` removes them: every process then runs the pure-Python
# source (tests/unit/test_native.py compares the two forms' answers).
NATIVE ?= 1
export TRACEFIN_NATIVE := $(NATIVE)

native: $(VENV)/.installed
ifeq ($(NATIVE),0)
	$(BIN)/python scripts/build_native.py --pure
else
	$(BIN)/python scripts/build_native.py
endif

# Python packages come from the lock files in requirements/ (every version pinned, every file
# hashed: `pip install --require-hashes` refuses anything else): pip and setuptools first, so the
# current pip installs the rest; then the project itself, without dependencies and without an
# isolated build environment (which pip would fill with unhashed downloads).
$(VENV)/.installed: pyproject.toml requirements/pip.txt requirements/dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "tracefin needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/pip.txt
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	PYTHONWARNINGS="ignore:Editable installation" \
		$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "tracefin needs Node.js 20 with npm (for anvil and solc)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Regenerate the lock files from pyproject.toml and requirements/*.in with the pinned uv
# (requirements/uv.txt): Python 3.11 on Linux x86_64, a hash for every file of every pinned
# release. Existing pins are kept unless asked: `make lock LOCK_ARGS=--upgrade` moves every
# transitive dependency to its newest release, `LOCK_ARGS='--upgrade-package NAME'` just one
# (direct dependencies move by editing their pin in pyproject.toml). Then `make audit`.
LOCK_ARGS ?=
UV_COMPILE = $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command 'make lock' $(LOCK_ARGS)

$(BIN)/uv: requirements/uv.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/uv.txt
	touch $@

lock: $(BIN)/uv
	$(UV_COMPILE) requirements/uv.in -o requirements/uv.txt
	$(UV_COMPILE) requirements/pip.in -o requirements/pip.txt
	$(UV_COMPILE) pyproject.toml -o requirements/runtime.txt
	$(UV_COMPILE) pyproject.toml --extra dev --extra embedded \
		-c requirements/pip.txt -c requirements/runtime.txt -o requirements/dev.txt

# Known vulnerabilities in every locked Python package (pip-audit, against PyPI's advisory data)
# and in the node tools (npm audit). Fails on a finding not excused in docs/deployment.md, and
# fails as loudly when an advisory service cannot be asked (AUDIT_UNREACHABLE=warn makes that a
# warning, for CI on machines that reach the package registries but not their audit APIs).
AUDIT_UNREACHABLE ?= fail

audit: $(VENV)/.installed node_modules/.installed
	$(BIN)/python scripts/audit.py --unreachable=$(AUDIT_UNREACHABLE)

# PostgreSQL must answer on 127.0.0.1:5432 unless TRACEFIN_TEST_DATABASE_URL points elsewhere;
# Mosquitto and anvil are started privately by the tests themselves.
services:
	@scripts/ensure-services.sh

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Tests run in parallel (pytest-xdist), each worker with its own scratch database, Mosquitto
# and anvil. Most of an integration test's time is spent waiting on child processes (workers,
# brokers, chains), so the full suite runs more workers than the machine has cores. With
# --dist loadgroup, tests sharing a module-scoped rig stay on one worker (tests/conftest.py
# groups them) and every other test goes to whichever worker is free.
# `make test` runs every property test with CI's example counts (Hypothesis profile `ci`);
# `make test-fast` is the quick loop: the pure and unit tests, Hypothesis profile `dev`.
# Three: measured on the 2-core machine, 3 workers ran the suite in 256 s, 4 in 272-316 s and 6 in
# 373 s (the suite is CPU-bound once every worker has work; each worker also pays its collection).
TEST_WORKERS ?= 3
FAST_WORKERS ?= 2

# CI runs `make test` only, so the audit runs here first: a finding fails the run; an advisory
# service this machine cannot ask is a loud warning (these machines reach the package registries
# but not their audit APIs), so `make test` still works offline.
test: bootstrap services lint
	$(MAKE) --no-print-directory audit AUDIT_UNREACHABLE=warn
	@scripts/ensure-browser.sh
	TRACEFIN_HYPOTHESIS_PROFILE=ci $(BIN)/pytest -q -ra -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

test-fast: bootstrap
	TRACEFIN_HYPOTHESIS_PROFILE=dev $(BIN)/pytest -q -ra -n $(FAST_WORKERS) tests/unit

# Everything embedded (PostgreSQL, Mosquitto, anvil) unless TRACEFIN_* URLs point elsewhere.
demo: bootstrap
	$(BIN)/tracefin up --demo

bench: bootstrap services
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/anchor.py
	$(BIN)/python bench/finance.py
	$(BIN)/python bench/lookup.py
	$(BIN)/python bench/query.py

# Rebuild the committed ABI + bytecode artifacts from contracts/*.sol (pinned solc-js).
contracts: node_modules/.installed
	node contracts/build.mjs contracts/artifacts

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache build epcis/*.so
