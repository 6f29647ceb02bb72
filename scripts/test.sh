#!/usr/bin/env bash
# Every quality gate, in the order that fails fastest: lint, format, types, then the tests
# (unit, end-to-end against the simulators, and browser tests when Chromium is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

echo "== ruff check"; "$BIN/ruff" check src tests scripts benchmarks
echo "== ruff format --check"; "$BIN/ruff" format --check src tests scripts benchmarks
echo "== mypy (strict)"; "$BIN/mypy"
echo "== pytest"
# Exit code 5 ("no tests collected") is a failure like any other non-zero code.
"$BIN/pytest" "$@"
