#!/usr/bin/env bash
# Set up, make sure Redis and PostgreSQL run, lint and type-check (a new finding fails the run),
# then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/soundbox services
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
