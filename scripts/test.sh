#!/usr/bin/env bash
# Sets up the engine and runs the checks: ruff, then the test suite (PostgreSQL tests
# run when PostgreSQL answers at 127.0.0.1:5432, and say why they skip otherwise).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
