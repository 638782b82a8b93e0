#!/usr/bin/env bash
# Set up, make sure Redis and PostgreSQL run, lint and type-check (a new finding fails the run),
# then run the whole test suite in SOUNDBOX_TEST_PROCESSES pytest processes (default 2; each claims
# its own Redis database and PostgreSQL database, so at most 15). Test files are kept whole on one
# process (--dist loadfile), so a module's worker and API are started once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/soundbox services
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest -n "${SOUNDBOX_TEST_PROCESSES:-2}" --dist loadfile "$@"
