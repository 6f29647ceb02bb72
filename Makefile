# Two commands matter: `make run` (the offline demo) and `make test` (every quality gate).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What `make run`/`make serve` need: the package alone, without the dev tools (pytest, mypy,
# playwright...). A venv with the dev extras already has it.
RUN_STAMP := $(VENV)/.installed-run

.PHONY: run serve test lint typecheck unit e2e bench bench-calls soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(RUN_STAMP): pyproject.toml
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then touch $(RUN_STAMP); else \
	  $(PYTHON) -m venv $(VENV) && \
	  $(BIN)/pip install --quiet --upgrade pip && \
	  $(BIN)/pip install --quiet -e . && \
	  touch $(RUN_STAMP); fi

run: $(RUN_STAMP)
	$(BIN)/callbridge demo

serve: $(RUN_STAMP)
	$(BIN)/callbridge serve --config config.toml

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not e2e and not browser"

e2e: $(STAMP)
	$(BIN)/pytest -m e2e

test: $(STAMP)
	bash scripts/test.sh

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-calls: $(STAMP)
	$(BIN)/python -m benchmarks.calls --calls 1 4 8

# Memory over a long run: SOAK_CALLS calls for SOAK_MINUTES minutes against the simulators; prints
# the daemon's RSS and fds each minute and the growth after the first minute (target: < 5 %).
SOAK_CALLS ?= 20
SOAK_MINUTES ?= 60
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak --calls $(SOAK_CALLS) --minutes $(SOAK_MINUTES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
