"""What replication loads before its first pass can start (issue 18: the initial sync is
timed from the process start, and pydantic with the whole config model cost ~0.35 s of it
when `sentinel.migrations` pulled the alarm engine in through `sentinel.alarm`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# what the daemon's replication and the bench's replicator process import
REPLICATION = (
    "from backup.replicator import Replicator\n"
    "from backup.spec import ReplicationSpec\n"
    "from backup.transport import parse_target\n"
    "from sentinel import migrations\n"
    "from sentinel.store import Store\n"
)


def test_replication_and_the_schema_load_neither_the_engine_nor_pydantic() -> None:
    probe = REPLICATION + "import json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(out.stdout))
    heavy = {"pydantic", "pydantic_core", "sentinel.alarm.engine", "sentinel.config.root"}
    assert not heavy & loaded, sorted(heavy & loaded)
    # and the schema migrations still reach the alarm tables
    assert "sentinel.alarm.schema" in loaded
