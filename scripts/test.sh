#!/usr/bin/env bash
# Runs the whole test suite (lint first) on a fresh machine: installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Four pytest-xdist workers by default, one test file each at a time: most tests wait on real
# servers rather than compute, so 2 cores run four (~6-7 min; one process, ~18 min, is over the
# ~10 min budget). SENTINEL_TEST_WORKERS=0 runs them in one process.
# When at most 3 tests fail under that load, their files run again, alone, once: a real failure
# fails there too and fails the run (the whole file, so state left by an earlier test in it is
# there again); a test that passes alone is named below as timing-sensitive, to be made robust
# (BENCHMARKS.md, "The suite in parallel"). More failures, a collection error, or a worker
# that crashed are not retried. The slowest tests are printed, to say where the time goes.
workers="${SENTINEL_TEST_WORKERS:-4}"
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
rc=0
.venv/bin/pytest -q -o cache_dir="$cache" --durations=40 -n "$workers" --dist loadfile \
    -m "not serial" "$@" || rc=$?
if [ "$rc" -eq 1 ] && [ "$workers" != "0" ]; then
    files="$(.venv/bin/python - "$cache" <<'PY'
import json, pathlib, sys
seen = pathlib.Path(sys.argv[1]) / "v" / "cache" / "lastfailed"
failed = json.loads(seen.read_text()) if seen.exists() else {}
tests = [k for k in failed if "::" in k and pathlib.Path(k.split("::")[0]).is_file()]
if 0 < len(failed) <= 3 and len(tests) == len(failed):
    print("\n".join(sorted({k.split("::")[0] for k in tests})))
PY
)"
    if [ -z "$files" ]; then
        echo "=== tests failed under $workers workers (more than 3, or not a test): no second run ==="
        exit 1
    fi
    echo "=== tests failed under $workers workers: their files again, alone: $(echo $files) ==="
    # shellcheck disable=SC2086 # one path per word, and test paths have no spaces
    .venv/bin/pytest -q -p no:cacheprovider -m "not serial" $files
    echo "=== TIMING-SENSITIVE: the tests above failed under $workers workers and passed alone ==="
elif [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then
    exit "$rc" # 5: nothing but serial tests selected, run below
fi
# the tests that change the machine itself (accounts, /etc) run alone, after the others
rc=0
.venv/bin/pytest -q -p no:cacheprovider -m serial "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    rc=0 # pytest's "no tests collected": none of the selected tests is serial
fi
exit "$rc"
