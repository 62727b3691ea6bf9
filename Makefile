# The verbs a newcomer needs. Each target installs what it needs first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: run test test-clock test-chaos test-fuzz lint bench install clean-db worker-release

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) requirements.lock pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m leadops.devserver

# The reference worker as a release artifact (docs/RELEASES.md, "The reference worker as a release"):
# dist/leadops-worker-$(VERSION).tar.gz, ready for `manage.py release_publish`. Standard library only,
# so it needs no installed environment. WORKER_SOURCE packs another copy of the package; DIST another folder.
WORKER_SOURCE ?= worker_client
DIST ?= dist
worker-release:
	@test -n "$(VERSION)" || (echo "usage: make worker-release VERSION=x.y.z" >&2; exit 2)
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m worker_client.release --version $(VERSION) --source $(WORKER_SOURCE) --out $(DIST)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	DEBUG=true $(VENV)/bin/mypy
	DEBUG=true $(PY) manage.py makemigrations --check --dry-run
	DEBUG=true $(PY) manage.py check
	# Modules meet through public names (docs/SYSTEM_OVERVIEW.md, "Public faces").
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/test_public_faces.py

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The fuzzers at CI size (docs/CONTRIBUTING.md, "Fuzzing"): schemathesis 5,000 cases signed and 5,000
# unsigned (10,000 in all), hypothesis 1,000 examples a property; `make test` runs them small.
FUZZ_CASES ?= 5000
FUZZ_EXAMPLES ?= 1000
test-fuzz: $(STAMP)
	LEADOPS_FUZZ_CASES=$(FUZZ_CASES) LEADOPS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/pytest -q -n 2 -m fuzz tests/fuzz

# The clock-sensitive tests again with the wall clock a year ahead and a year back: a test that only
# passes near the day it was written fails here (docs/CONTRIBUTING.md, "Tests and the clock").
CLOCK_SENSITIVE := tests/test_clock.py tests/queueing tests/ingestion tests/workers_mgmt tests/leadops tests/admin \
	tests/releases_app tests/alerts
test-clock: $(STAMP)
	$(VENV)/bin/pytest -q $(CLOCK_SENSITIVE) --clock-shift=365
	$(VENV)/bin/pytest -q $(CLOCK_SENSITIVE) --clock-shift=-365

# The chaos run (docs/RELIABILITY.md): live processes killed and disturbed by a seed; needs PostgreSQL
# (DATABASE_URL) and redis-server. CHAOS_SEED=N replays a run; without it a random seed is printed.
test-chaos: $(STAMP)
	LEADOPS_CHAOS_SEED=$(CHAOS_SEED) $(VENV)/bin/pytest -m chaos tests/chaos -s -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.lock
	$(PY) -m bench.run
