#!/usr/bin/env bash
# Sets up the engine and runs the checks: ruff (format and lint), mypy, then the test suite in parallel
# (PostgreSQL tests run when PostgreSQL answers at 127.0.0.1:5432, and say why they
# skip otherwise). `scripts/test.sh tests/unit` runs the pure layer alone, in seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# The browser tests (tests/browser) drive Debian's Chromium through Playwright; install it
# where it is missing and we may (root, apt-get). Without it they skip, saying why.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's Chromium for the browser tests (a minute or two)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
      || echo "warning: Chromium could not be installed; the browser tests will skip" >&2
  else
    echo "note: /usr/bin/chromium is missing (apt-get install chromium as root): the browser tests will skip" >&2
  fi
fi
# The accessibility test runs axe-core in those pages; npm puts it beside the virtual environment.
if [ ! -f .venv/axe/node_modules/axe-core/axe.min.js ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing axe-core for the accessibility test..."
    timeout 180 npm install --silent --no-audit --no-fund --fetch-retries=1 --prefix .venv/axe axe-core@4.14.1 >/dev/null 2>&1 \
      || echo "warning: axe-core could not be installed; the accessibility test will skip" >&2
  else
    echo "note: npm is missing: the accessibility test will skip" >&2
  fi
fi
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy  # strict on every package; its configuration is in pyproject.toml
# The layers run in parallel, one process per core, a test file to a process (each
# test has its own database; the Prefect servers are per process and per file).
exec .venv/bin/python -m pytest -n auto --dist loadfile "$@"
