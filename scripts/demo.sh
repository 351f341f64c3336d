#!/usr/bin/env bash
# Sets up the engine and runs the demo: round 1 (2018) on the embedded SQLite database.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/sip demo "$@"
