#!/usr/bin/env bash
# Runs the whole test suite (lint first) on a fresh machine: installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# the slowest tests are printed: the suite is over its ~10 min budget, this says where
exec .venv/bin/pytest -q -p no:cacheprovider --durations=40 "$@"
