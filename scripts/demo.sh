#!/usr/bin/env bash
# Runs the whole daemon on embedded defaults: simulated sensors over a real MQTT broker, a
# local replica, alerts printed to this console. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sentinel demo "$@"
