# Two commands matter: `make run` (the offline demo) and `make test` (every quality gate).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run serve test lint typecheck unit e2e bench bench-calls clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/callbridge demo

serve: $(STAMP)
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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Property-based fuzzing of the Twilio media parser, the Palabra parser and the webhook form and
# signature path: FUZZ_EXAMPLES (default 25,000) per test, >= 100,000 inputs per parser, stopped
# after FUZZ_TIMEOUT (12-25 minutes on two shared cores). `make test` runs them briefly.
.PHONY: fuzz
FUZZ_EXAMPLES ?= 25000
FUZZ_TIMEOUT ?= 45m
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) timeout $(FUZZ_TIMEOUT) \
		$(BIN)/pytest tests/fuzz -q -p no:cacheprovider -o faulthandler_timeout=0 \
		--hypothesis-show-statistics
