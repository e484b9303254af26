"""The rsync password file: sentinel accepts exactly what rsync accepts (rsync's getpassf
rule), so a file that passes the start-up check never fails every transfer later."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.remote import RsyncDaemon

NOBODY = 65534
ROOT = 0
PASSWORD = "s3cret-pw"
# What sentinel refuses by its own policy for every credential file, although rsync takes it.
STRICTER = 0o021  # group write, others execute

# (mode, owner uid, content, user rsync and sentinel run as)
CASES = [
    (0o640, ROOT, PASSWORD, NOBODY),  # the documented layout: root:sentinel 0640
    (0o600, NOBODY, PASSWORD, NOBODY),  # owned by the daemon user itself
    (0o600, ROOT, PASSWORD, ROOT),
    (0o400, ROOT, PASSWORD, ROOT),
    (0o600, NOBODY, PASSWORD, ROOT),  # rsync as root: must be owned by root
    (0o640, NOBODY, PASSWORD, ROOT),
    (0o644, ROOT, PASSWORD, NOBODY),  # readable by others
    (0o604, NOBODY, PASSWORD, NOBODY),
    (0o600, ROOT, PASSWORD, NOBODY),  # the daemon user cannot open it
    (0o600, ROOT, "", ROOT),  # no password in it
    (0o660, ROOT, PASSWORD, NOBODY),  # group-writable: rsync takes it, sentinel does not
]

CHECK = """
import json, sys
from pathlib import Path
from backup.target import TargetError
from sentinel.config import load_config
from sentinel.credentials import credential_problems
from sentinel.replication import spec_from_config
config = load_config(Path(sys.argv[1]))
out = {"problems": credential_problems(config, None), "transfer": None}
try:
    spec_from_config(config.replication[0], Path(sys.argv[2])).target.transport_args(
        Path(sys.argv[2]))
except TargetError as exc:
    out["transfer"] = str(exc)
print(json.dumps(out))
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can enter (pytest's tmp_path is root-only)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to act as another user")
    with tempfile.TemporaryDirectory() as name:
        Path(name).chmod(0o755)
        yield Path(name)


def _as(uid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    prefix = (
        [] if uid == ROOT else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    )
    return subprocess.run(
        [*prefix, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )


def test_sentinel_accepts_exactly_the_password_files_rsync_accepts(
    shared_dir: Path, rsyncd: RsyncDaemon
) -> None:
    src = shared_dir / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    for path in (src, src / "a.txt"):
        os.chown(path, NOBODY, NOBODY)
    seen = []
    for i, (mode, owner, content, user) in enumerate(CASES):
        password = shared_dir / f"rsync{i}.password"
        password.write_text(content + "\n" if content else "")
        os.chown(password, owner, NOBODY)  # group: the daemon user's group
        password.chmod(mode)
        config = shared_dir / f"sentinel{i}.toml"
        config.write_text(
            f'[[replication]]\nname = "docs"\nsource = "{src}"\n'
            f'target = "{rsyncd.url(f"r{i}")}"\npassword_file = "{password}"\n'
        )
        rsync = _as(
            user, "rsync", "-r", f"--password-file={password}", f"{src}/", rsyncd.url(f"r{i}") + "/"
        )
        check = _as(user, sys.executable, "-c", CHECK, str(config), str(shared_dir))
        assert check.returncode == 0, check.stderr
        verdict = json.loads(check.stdout)
        refused = verdict["problems"] + ([verdict["transfer"]] if verdict["transfer"] else [])
        case = f"mode {mode:04o} owner {owner} as {user}"
        seen.append((case, rsync.returncode, refused))
        if rsync.returncode != 0:
            assert refused, (
                f"{case}: rsync refuses ({rsync.stderr.strip()}) but sentinel "
                "accepts it: every transfer would fail"
            )
            assert any("fix" in r or "holds no password" in r for r in refused), refused
        elif not mode & STRICTER:
            assert not refused, f"{case}: rsync takes it, sentinel refuses: {refused}"
            assert (rsyncd.module_dir / f"r{i}" / "a.txt").read_text() == "a"
    # the cases really cover both verdicts
    assert {rc == 0 for _, rc, _ in seen} == {True, False}
