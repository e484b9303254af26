#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine for the demo and the tests: the system packages sentinel
# drives or tests against (installed only when missing), then the project venv in .venv.
# Safe to run again; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# python3-venv: scripts/install.sh builds its venv with /usr/bin/python3 (the system one),
# whatever python3 comes first on PATH, and tests/systemd/test_real_install.py runs it.
APT_PACKAGES=(mosquitto mosquitto-clients rsync openssh-server openssh-client socat lsyncd
    btrfs-progs stunnel4 openssl acl python3-venv
    # the dashboard's browser tests: Debian's chromium (Playwright drives it; no download)
    # and a font with Hangul so the Korean page renders in screenshots
    chromium fonts-noto-cjk
    # promtool checks docs/monitoring.md's alert rules and the Grafana dashboard's queries
    prometheus
    # the UPS source's tests run a real upsd with NUT's dummy-ups driver; the SMS-agent
    # channel's tests insert into real MariaDB and PostgreSQL servers
    nut-server nut-client mariadb-server mariadb-client postgresql)
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null && [[ " ${missing[*]} " != *" python3-venv "* ]]; then
    missing+=(python3-venv)
fi
if ((${#missing[@]})); then
    echo "setup: installing system packages: ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
# The Debian packages start their services; sentinel's tests start their own on free ports.
for svc in mosquitto ssh lsyncd prometheus nut-server nut-monitor mariadb postgresql; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" 2>/dev/null || true
    fi
done

stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: creating $VENV and installing sentinel with its test dependencies"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e '.[test]'
    touch "$stamp"
fi
