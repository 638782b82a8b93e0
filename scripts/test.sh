#!/usr/bin/env bash
# Set up, make sure Redis and PostgreSQL run, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/soundbox services
exec .venv/bin/python -m pytest "$@"
