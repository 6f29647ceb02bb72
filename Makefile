# Two commands matter: `make run` (the offline demo) and `make test` (every quality gate).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What `make run`/`make serve` need: the package alone, without the dev tools (pytest, mypy,
# playwright...). A venv with the dev extras already has it.
RUN_STAMP := $(VENV)/.installed-run

.PHONY: help run serve test lint typecheck unit e2e bench bench-calls bench-load soak clean
.DEFAULT_GOAL := help

help:
	@echo "make run    the offline demo: the real daemon between simulated Twilio and Palabra"
	@echo "make test   every quality gate CI runs (lint, format, mypy --strict, all tests)"
	@echo "make serve  callbridge serve --config config.toml (docs/operations.md)"
	@echo "also: unit e2e bench bench-calls bench-load soak fuzz clean (README.md, Development)"

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

# Load sweep of the real daemon (docs/performance.md); BENCH_ARGS passes options, e.g.
# make bench-load BENCH_ARGS="--label after --profile-at 20"
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench-load: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.load $(BENCH_ARGS)

# Memory over a long run: SOAK_CALLS calls for SOAK_MINUTES minutes against the simulators; prints
# the daemon's RSS, anonymous memory and fds each minute, the growth after the first minute
# (target: < 5 %) and the second half's slope (a leak's sign; docs/operations.md, "Memory").
SOAK_CALLS ?= 20
SOAK_MINUTES ?= 60
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak --calls $(SOAK_CALLS) --minutes $(SOAK_MINUTES)

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
