# The entry points people type. Every target creates the venv on first use.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp

.PHONY: install serve worker demo test lint typecheck check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) tools/make_venv.py $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)          ## HTTP API + queue consumer on :8000 (embedded Postgres if DATABASE_URL unset)
	$(BIN)/scribe serve

worker: $(STAMP)         ## queue consumer only
	$(BIN)/scribe worker

demo: $(STAMP)           ## three sample emails through the real queue (embedded PostgreSQL; offline without keys)
	$(BIN)/scribe demo

test: $(STAMP)           ## the test suite (embedded Postgres unless TEST_DATABASE_URL is set)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check scribe tests bench tools
	$(BIN)/ruff format --check scribe tests bench tools

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test   ## lint, types and tests

bench: $(STAMP)          ## benchmarks; each prints its figures
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest-pg .pytest_cache .mypy_cache .ruff_cache
