# The entry points people type. Every target creates the venv on first use.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
# Two installs, each exactly the versions of its lock file (hashes checked): what serving needs
# (serve, worker, demo, install-serve: requirements/serve.lock) and, on top, the dev extras
# (pytest, ruff, mypy, import-linter, psutil, uv) for test, lint, typecheck, check, bench and
# install (requirements/dev.lock). `make lock` re-resolves both from pyproject.toml.
STAMP   := $(VENV)/.installed-stamp
SERVE_STAMP := $(VENV)/.installed-serve-stamp
SERVE_LOCK := requirements/serve.lock
DEV_LOCK   := requirements/dev.lock
# Locks hold every platform's wheels (x86_64 CI, an aarch64 Raspberry Pi) and Python >= 3.11.
COMPILE := $(BIN)/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11

.PHONY: install install-serve serve worker demo test lint typecheck check bench mutants lock \
	lock-upgrade clean

$(STAMP): pyproject.toml $(DEV_LOCK)
	$(PYTHON) tools/make_venv.py $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP) $(SERVE_STAMP)

$(SERVE_STAMP): pyproject.toml $(SERVE_LOCK)
	$(PYTHON) tools/make_venv.py $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(SERVE_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(SERVE_STAMP)

install: $(STAMP)        ## everything, dev extras included
install-serve: $(SERVE_STAMP)  ## only what serving needs (a deployment)

serve: $(SERVE_STAMP)    ## HTTP API + queue consumer on :8000 (embedded Postgres if DATABASE_URL unset)
	$(BIN)/scribe serve

worker: $(SERVE_STAMP)   ## queue consumer only
	$(BIN)/scribe worker

demo: $(SERVE_STAMP)     ## three sample emails through the real queue (embedded PostgreSQL; offline without keys)
	$(BIN)/scribe demo

# One worker per CPU (at most 4, tests/conftest.py), each with its own embedded server;
# docs/testing.md. `$(BIN)/pytest tests/unit/test_x.py` runs a file in one process.
test: $(STAMP)           ## the test suite (embedded Postgres unless TEST_DATABASE_URL is set)
	$(BIN)/pytest -n auto

lint: $(STAMP)           ## ruff, the layering contracts of pyproject.toml [tool.importlinter], doc links
	$(BIN)/ruff check scribe tests bench tools
	$(BIN)/ruff format --check scribe tests bench tools
	$(BIN)/lint-imports
	$(BIN)/python tools/check_doc_links.py

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test   ## lint, types and tests

bench: $(STAMP)          ## benchmarks; each prints its figures
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Mutation testing of scribe/queue/ (mutmut, config in pyproject.toml; not in CI: it runs the
# queue tests once per mutant). Narrow it with e.g. MUTANTS='scribe.queue.runner*'.
MUTANTS ?=
mutants: $(STAMP)        ## mutation testing of the queue engine; prints the surviving mutants
	$(BIN)/mutmut run $(MUTANTS) || true
	$(BIN)/mutmut results

# The serving lock is resolved within the dev lock, so both hold the same version of a package.
lock: $(STAMP)           ## re-resolve the locks after a pyproject.toml change (keeps other pins)
	$(COMPILE) --extra dev -o $(DEV_LOCK)
	$(COMPILE) -c $(DEV_LOCK) -o $(SERVE_LOCK)

lock-upgrade: $(STAMP)   ## re-resolve the locks to the newest versions pyproject.toml allows
	$(COMPILE) --extra dev --upgrade -o $(DEV_LOCK)
	$(COMPILE) -c $(DEV_LOCK) -o $(SERVE_LOCK)

clean:
	rm -rf $(VENV) .pytest-pg .pytest-pg-* .pytest_cache .mypy_cache .ruff_cache .import_linter_cache mutants
