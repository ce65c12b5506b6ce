# The entry points people type. Every target creates the venv on first use.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
# Two installs: what serving needs (serve, worker, demo, install-serve) and, on top, the dev
# extras (pytest, ruff, mypy, import-linter, psutil) for test, lint, typecheck, check, bench
# and install.
STAMP   := $(VENV)/.installed-stamp
SERVE_STAMP := $(VENV)/.installed-serve-stamp

.PHONY: install install-serve serve worker demo test lint typecheck check bench mutants clean

$(STAMP): pyproject.toml
	$(PYTHON) tools/make_venv.py $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $(SERVE_STAMP)

$(SERVE_STAMP): pyproject.toml
	$(PYTHON) tools/make_venv.py $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(SERVE_STAMP)

install: $(STAMP)        ## everything, dev extras included
install-serve: $(SERVE_STAMP)  ## only what serving needs (a deployment)

serve: $(SERVE_STAMP)    ## HTTP API + queue consumer on :8000 (embedded Postgres if DATABASE_URL unset)
	$(BIN)/scribe serve

worker: $(SERVE_STAMP)   ## queue consumer only
	$(BIN)/scribe worker

demo: $(SERVE_STAMP)     ## three sample emails through the real queue (embedded PostgreSQL; offline without keys)
	$(BIN)/scribe demo

test: $(STAMP)           ## the test suite (embedded Postgres unless TEST_DATABASE_URL is set)
	$(BIN)/pytest

lint: $(STAMP)           ## ruff, and the layering contracts of pyproject.toml [tool.importlinter]
	$(BIN)/ruff check scribe tests bench tools
	$(BIN)/ruff format --check scribe tests bench tools
	$(BIN)/lint-imports

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

clean:
	rm -rf $(VENV) .pytest-pg .pytest_cache .mypy_cache .ruff_cache .import_linter_cache mutants
