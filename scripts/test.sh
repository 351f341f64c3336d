#!/usr/bin/env bash
# Sets up the engine and runs the checks: ruff (format and lint), mypy, then the test suite in parallel
# (PostgreSQL tests run when PostgreSQL answers at 127.0.0.1:5432, and say why they
# skip otherwise). `scripts/test.sh tests/unit` runs the pure layer alone, in seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy  # strict on every package; its configuration is in pyproject.toml
# The layers run in parallel, one process per core, a test file to a process (each
# test has its own database; the Prefect servers are per process and per file).
exec .venv/bin/python -m pytest -n auto --dist loadfile "$@"
