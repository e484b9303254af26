#!/usr/bin/env bash
# Runs the whole test suite (lint first) on a fresh machine: installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
