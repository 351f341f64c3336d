#!/usr/bin/env bash
# Creates .venv with Python 3.11 or newer and installs the engine (with the test tools).
# Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -x .venv/bin/python ]; then
  PYTHON="${PYTHON:-}"
  if [ -z "$PYTHON" ]; then
    for candidate in python3.11 python3.12 python3.13 python3; do
      if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
    done
  fi
  if [ -z "$PYTHON" ] || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: Python 3.11 or newer is needed (found: ${PYTHON:-none}); install it or set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  echo "setting up .venv with $("$PYTHON" --version)..."
  "$PYTHON" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "installing the engine and its dependencies into .venv (a minute or two the first time)..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,pdf]"
  touch .venv/.installed
fi
