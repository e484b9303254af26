"""The database drill (issue 16): open the database from what the replica holds, up to a
point in time, and measure how long that takes (the RTO).

PostgreSQL is driven here: the newest base backup (a plain `pg_basebackup` directory or its
`-Ft` tar with `pg_wal.tar`) is restored into a scratch directory, the shipped WAL segments
are pulled from the replica beside it, and a throwaway postgres (unix socket in the scratch
directory, no TCP, archive_mode off so the drill never writes into the real archive) replays
them up to the target time, promotes, answers `pg_last_xact_replay_timestamp()` and the
check query, and is stopped. Oracle and Tibero run the configured restore, recover and check
commands (docs/database.md gives RMAN and tbrmgr ones). The RTO runs from the start of the
restore to the check query's answer; its parts are kept for the benchmark and the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backup.database_drill_record import DrillRecord
from backup.logname import LogName, LogNaming
from backup.rsync import COMMON_ARGS, run_rsync
from backup.target import Target
from backup.transfer import PROTECT
from common.redaction import Redactor, command_secrets, mask

# the user a drill runs postgres as when sentinel runs as root (postgres refuses root)
UNPRIVILEGED = "nobody"
_START_WAL = re.compile(r"^START WAL LOCATION: .*\(file (?P<file>[0-9A-F]{24})\)", re.M)
_BACKUP_MARKERS = ("backup_label", "base.tar", "base.tar.gz")


class DrillError(RuntimeError):
    """A drill step failed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class DrillPlan:
    """Everything one drill needs, from the replication's config (sentinel/cli/backup.py)."""

    name: str
    target: Target  # the replica: the shipped logs are at its root
    runtime_dir: Path
    preset: str | None
    pattern: str | None
    base_backup_dir: Path | None
    pg_bin: Path
    check_query: str
    timeout: float
    max_age: float
    # never a scratch directory inside one of these (the source, the replica, the backups)
    protected: tuple[Path, ...] = ()
    scratch_dir: Path | None = None
    target_time: float | None = None  # None: as far as the shipped logs go
    database: str = "postgres"
    user: str = "postgres"
    restore_command: str | None = None
    recover_command: str | None = None
    check_command: str | None = None

    @property
    def by_commands(self) -> bool:
        return self.restore_command is not None


class _Clock:
    """The RTO and its parts: each step's seconds, from one start."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self._mark = self.began
        self.parts: dict[str, float] = {}

    def step(self, name: str) -> None:
        now = time.monotonic()
        self.parts[name] = round(now - self._mark, 3)
        self._mark = now

    def total(self) -> float:
        return round(time.monotonic() - self.began, 3)


async def database_drill(plan: DrillPlan) -> DrillRecord:
    """Runs the drill (see the module doc); never raises for a failed step: the record's
    `ok` is False and `error` says why."""
    record = DrillRecord(
        source=plan.name, ts=time.time(), max_age=plan.max_age, target_time=plan.target_time
    )
    clock = _Clock()
    try:
        scratch = _scratch(plan)
    except DrillError as exc:
        record.error = str(exc)
        return record
    try:
        async with asyncio.timeout(plan.timeout):
            if plan.by_commands:
                await _by_commands(plan, scratch, clock, record)
            else:
                await _postgresql(plan, scratch, clock, record)
        record.rto = clock.total()
        record.ok = True
    except TimeoutError:
        record.error = f"the drill took longer than drill.timeout ({plan.timeout:g}s)"
    except DrillError as exc:
        record.error = str(exc)
    except OSError as exc:
        record.error = f"{exc.strerror or exc}: {exc.filename or scratch}"
    finally:
        record.parts = clock.parts
        shutil.rmtree(scratch, ignore_errors=True)
    return record


def _scratch(plan: DrillPlan) -> Path:
    """A fresh private directory for the drill (removed after), never inside the source,
    the replica or the base backups: the drill's files must not land in what it protects."""
    if plan.scratch_dir is not None:
        wanted = plan.scratch_dir.resolve()
        for kept in plan.protected:
            if wanted.is_relative_to(kept.resolve()):
                raise DrillError(
                    f"drill.scratch_dir {plan.scratch_dir} is inside {kept}: choose a "
                    "directory outside the source, the replica and the base backups"
                )
        plan.scratch_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="sentinel-db-drill-", dir=plan.scratch_dir))
    if os.geteuid() == 0:
        shutil.chown(scratch, UNPRIVILEGED)
    return scratch


# -- PostgreSQL ----------------------------------------------------------------------------


async def _postgresql(plan: DrillPlan, scratch: Path, clock: _Clock, record: DrillRecord) -> None:
    if plan.pattern is None and plan.preset != "postgresql":
        raise DrillError(
            f"a {plan.preset} drill runs drill.restore_command, recover_command and "
            "check_command (docs/database.md): set them"
        )
    backup = newest_base_backup(plan.base_backup_dir)
    record.base_backup = backup.name
    data = scratch / "data"
    await _restore_base(backup, data)
    clock.step("restore")
    logs = scratch / "logs"
    first = _first_segment(data)
    await _fetch_logs(plan, logs, since=first)
    _check_sequence(plan, data, logs, first)
    clock.step("logs")
    _configure(plan, scratch, data, logs)
    if os.geteuid() == 0:
        await _chown_tree(scratch)
    port = _free_port()
    server = _Server(plan.pg_bin, data, scratch, port)
    try:
        await server.start(plan.timeout)
        clock.step("start")
        await server.wait_promoted(plan)
        clock.step("replay")
        newest, first_row = await server.check(plan)
        record.newest_xact, record.check_result = newest, first_row
        clock.step("check")
    finally:
        await server.stop()


def newest_base_backup(where: Path | None) -> Path:
    """The newest pg_basebackup under `where` (a plain directory with backup_label, or a
    directory with base.tar from -Ft), or `where` itself when it is one."""
    if where is None:
        raise DrillError("no base backup to restore: set base_backup_dir in [replication.database]")
    if not where.is_dir():
        raise DrillError(f"base_backup_dir {where} is not a directory")
    if _is_backup(where):
        return where
    found = [p for p in where.iterdir() if p.is_dir() and _is_backup(p)]
    if not found:
        raise DrillError(
            f"no base backup in {where} (a pg_basebackup directory has backup_label, "
            "or base.tar with -Ft)"
        )
    return max(found, key=lambda p: (p.stat().st_mtime, p.name))


def _is_backup(path: Path) -> bool:
    return any((path / marker).is_file() for marker in _BACKUP_MARKERS)


async def _restore_base(backup: Path, data: Path) -> None:
    tar = next((backup / n for n in ("base.tar", "base.tar.gz") if (backup / n).is_file()), None)
    if tar is None:
        await _run(["cp", "-a", "--", str(backup), str(data)], what="copying the base backup")
    else:
        data.mkdir()
        await _run(["tar", "-xf", str(tar), "-C", str(data)], what=f"unpacking {tar}")
        wal_tar = next(
            (backup / n for n in ("pg_wal.tar", "pg_wal.tar.gz") if (backup / n).is_file()), None
        )
        if wal_tar is not None:
            (data / "pg_wal").mkdir(exist_ok=True)
            await _run(
                ["tar", "-xf", str(wal_tar), "-C", str(data / "pg_wal")],
                what=f"unpacking {wal_tar}",
            )
    # a copy taken as root keeps root's modes: postgres wants its data directory private
    data.chmod(0o700)


async def _fetch_logs(plan: DrillPlan, logs: Path, *, since: str | None = None) -> None:
    """The shipped logs, pulled from the replica (local or over its transport) into the
    scratch directory: a drill reads the replica, never the source's archive. `since`: a
    WAL segment name; older segments are left out (a replica keeps months of them, the
    base backup needs none before its own first one)."""
    logs.mkdir()
    reach = [
        *COMMON_ARGS,
        f"--timeout={max(1, int(plan.timeout))}",
        *plan.target.transport_args(plan.runtime_dir),
    ]
    older: list[str] = []
    if since is not None:
        listed = await run_rsync(["--list-only", *reach, plan.target.path()])
        if not listed.ok:
            raise DrillError(
                f"listing the shipped logs at {plan.target.describe()} failed: {listed.error}"
            )
        naming = LogNaming(plan.preset, plan.pattern)
        first = naming.parse(since) or LogName(0, 0)  # a pattern not for WAL names: all
        # excludes, not --files-from (which an rsync daemon resolves wrongly): run_rsync
        # moves a long run of them into a file
        older = [
            f"--exclude=/{name}"
            for line in listed.output
            if len(fields := line.split(None, 4)) == 5 and not line.startswith("d")
            for name in (fields[4],)
            if (log := naming.parse(name)) is not None and log < first
        ]
    # not sentinel's own directories on the replica (old versions, partial transfers): they
    # grow with history and hold no log a restore needs
    pulled = await run_rsync(["-rt", *PROTECT, *older, *reach, plan.target.path(), f"{logs}/"])
    if not pulled.ok:
        raise DrillError(
            f"reading the shipped logs from {plan.target.describe()} failed: {pulled.error}"
        )


def _first_segment(data: Path) -> str:
    """The base backup's first WAL segment, from its backup_label."""
    label = data / "backup_label"
    found = _START_WAL.search(label.read_text(errors="replace")) if label.is_file() else None
    if found is None:
        raise DrillError(f"the base backup has no readable backup_label ({label})")
    return found["file"]


def _check_sequence(plan: DrillPlan, data: Path, logs: Path, first_name: str) -> None:
    """Every segment from the base backup's first one up to the newest shipped one must be
    there: past a gap, recovery stops, and the database would open silently older."""
    naming = LogNaming(plan.preset, plan.pattern)
    first = naming.parse(first_name)
    assert first is not None  # the regex above only takes WAL segment names
    have = {
        log.seq: name
        for name in os.listdir(logs)
        if (log := naming.parse(name)) is not None and log.seq >= first.seq
    }
    if first.seq not in have and not (data / "pg_wal" / first_name).is_file():
        raise DrillError(
            f"the base backup's first WAL segment {first_name} is neither in the replica "
            "nor in the backup: the backup cannot be made consistent"
        )
    if not have:
        return
    # holes by their ends: a stray name with a huge number must not make a list of 10^12
    missing: list[int] = []  # the first few, for the message
    count = 0
    prev = first.seq - 1
    for seq in sorted(have):
        lo, hi = prev + 1, seq
        if hi - lo > MANY_MISSING:
            # far more than a base backup's pg_wal ever holds: missing, not looked up
            count += hi - lo
            missing += range(lo, min(hi, lo + 5))
        else:
            for gone in range(lo, hi):
                if not (data / "pg_wal" / _segment(first_name, gone)).is_file():
                    count += 1
                    missing.append(gone)
        prev = seq
    if count:
        names = ", ".join(_segment(first_name, seq) for seq in missing[:5])
        more = f" and {count - 5} more" if count > 5 else ""
        raise DrillError(
            f"{count} WAL segment(s) missing from the replica ({names}{more}), before "
            f"the newest shipped one {have[max(have)]}: recovery would stop at the gap"
        )


# A hole wider than this many segments is not looked for in the base backup's pg_wal.
MANY_MISSING = 10_000


def _segment(like: str, seq: int) -> str:
    """The WAL file name of sequence `seq` on `like`'s timeline (16 MiB segments)."""
    per_log = 0x1_0000_0000 // (16 * 1024 * 1024)
    return f"{like[:8]}{seq // per_log:08X}{seq % per_log:08X}"


def _configure(plan: DrillPlan, scratch: Path, data: Path, logs: Path) -> None:
    """Recovery settings, appended to postgresql.auto.conf (read last, so they win over the
    backup's own): the shipped logs, the target, and a server nobody else can reach."""
    if not (data / "postgresql.conf").exists():  # Debian keeps it in /etc, outside the backup
        (data / "postgresql.conf").write_text("")
    (scratch / "pg_hba.conf").write_text("local all all trust\n")
    (scratch / "pg_ident.conf").write_text("")
    settings: dict[str, str] = {
        "restore_command": f"cp {_sh(str(logs))}/%f %p",
        "recovery_target_action": "promote",
        "recovery_target_timeline": "latest",
        "archive_mode": "off",  # never ship the drill's own WAL into the real archive
        "listen_addresses": "",
        "unix_socket_directories": str(scratch),
        "hba_file": str(scratch / "pg_hba.conf"),
        "ident_file": str(scratch / "pg_ident.conf"),
        "ssl": "off",
        "logging_collector": "off",
        "hot_standby": "on",
        "fsync": "off",  # a throwaway copy: nothing to keep after a crash
        "synchronous_commit": "off",
    }
    if plan.target_time is not None:
        settings["recovery_target_time"] = iso(plan.target_time)
    lines = "".join(f"{k} = '{v.replace(chr(39), chr(39) * 2)}'\n" for k, v in settings.items())
    with open(data / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
        conf.write(f"\n# sentinel backup drill --database\n{lines}")
    for stale in ("standby.signal", "postmaster.pid"):
        (data / stale).unlink(missing_ok=True)
    (data / "recovery.signal").write_text("")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(sep=" ")


def _sh(text: str) -> str:
    return shlex.quote(text)


async def _chown_tree(root: Path) -> None:
    """As root, the scratch directory goes to the unprivileged user postgres runs as."""
    await _run(["chown", "-R", f"{UNPRIVILEGED}:", str(root)], what="handing the scratch over")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    """The throwaway postgres: started with pg_ctl, asked over its unix socket."""

    def __init__(self, pg_bin: Path, data: Path, scratch: Path, port: int) -> None:
        self.pg_bin, self.data, self.scratch, self.port = pg_bin, data, scratch, port
        self.log = scratch / "postgres.log"
        self.started = False

    def _as_user(self, args: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return args
        return ["runuser", "-u", UNPRIVILEGED, "--", *args]

    async def start(self, wait: float) -> None:
        pg_ctl = self.pg_bin / "pg_ctl"
        if not pg_ctl.exists():
            raise DrillError(f"{pg_ctl} does not exist: set drill.pg_bin")
        self.started = True
        code, out = await _exec(
            self._as_user(
                [
                    str(pg_ctl),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    f"-p {self.port}",
                    "-w",
                    "-t",
                    str(max(1, int(wait))),
                    "start",
                ]
            )
        )
        if code:
            raise DrillError(f"the restored database did not start: {self.why() or out}")

    def why(self) -> str:
        """The server log's last FATAL/PANIC line (what a person must read), if any."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        bad = [ln for ln in text.splitlines() if " FATAL: " in ln or " PANIC: " in ln]
        if not bad:
            return ""
        return bad[-1].split(": ", 1)[-1].strip() + f" (server log {self.log.name})"

    def alive(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    async def _query(self, plan: DrillPlan, sql: str, database: str = "postgres") -> Any:
        import psycopg

        def ask() -> Any:
            with psycopg.connect(
                host=str(self.scratch),
                port=self.port,
                user=plan.user,
                dbname=database,
                autocommit=True,
                connect_timeout=5,
            ) as conn:
                return conn.execute(sql).fetchone()

        return await asyncio.to_thread(ask)

    async def wait_promoted(self, plan: DrillPlan) -> None:
        """Until recovery reached the target (or the end of the logs) and the server
        promoted; a recovery that stops short (the target lies past the logs) ends the
        server with a FATAL line, which becomes the error."""
        import psycopg

        while True:
            if not self.alive():
                raise DrillError(
                    "the restored database stopped during recovery: "
                    + (self.why() or "see the server log")
                )
            try:
                row = await self._query(plan, "select pg_is_in_recovery()")
            except psycopg.OperationalError as exc:
                if "does not exist" in str(exc):  # a wrong drill.user: waiting cannot help
                    raise DrillError(
                        f"cannot connect to the restored database: {_first_line(exc)}"
                    ) from None
                row = None
            if row is not None and not row[0]:
                return
            await asyncio.sleep(0.1)

    async def check(self, plan: DrillPlan) -> tuple[float | None, str]:
        import psycopg

        row = await self._query(
            plan, "select extract(epoch from pg_last_xact_replay_timestamp())::float8"
        )
        newest = None if row is None or row[0] is None else float(row[0])
        try:
            first = await self._query(plan, plan.check_query, plan.database)
        except psycopg.Error as exc:
            raise DrillError(f"the check query failed: {_first_line(exc)}") from None
        return newest, "(no rows)" if first is None else ", ".join(str(v) for v in first)

    async def stop(self) -> None:
        if not self.started or not self.alive():
            return
        await _exec(
            self._as_user(
                [str(self.pg_bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            )
        )


# -- Oracle / Tibero: the configured commands ------------------------------------------------


async def _by_commands(plan: DrillPlan, scratch: Path, clock: _Clock, record: DrillRecord) -> None:
    logs = scratch / "logs"
    await _fetch_logs(plan, logs)
    clock.step("logs")
    fill = {
        "scratch": _sh(str(scratch)),
        "logs": _sh(str(logs)),
        "target_time": _sh(iso(plan.target_time) if plan.target_time is not None else ""),
    }
    steps = (
        ("restore", plan.restore_command),
        ("recover", plan.recover_command),
        ("check", plan.check_command),
    )
    redactor = Redactor([p for _s, c in steps if c for p in command_secrets(c)])
    for step, command in steps:
        if not command:
            continue
        for key, value in fill.items():  # not str.format: a command may hold awk's {print}
            command = command.replace("{" + key + "}", value)
        code, out = await _exec(["sh", "-c", command], cwd=scratch)
        # the output goes into the drill record that status shows: a connect string's
        # password (`sys/pw@db`), echoed by a failing tool, must not
        out = mask(redactor.redact(out))
        if code:
            tail = out.strip().splitlines()[-1] if out.strip() else f"exit status {code}"
            raise DrillError(f"drill.{step}_command failed (exit {code}): {tail}")
        clock.step(step)
        if step == "check":
            lines = out.strip().splitlines()
            record.check_result = lines[0] if lines else "(no output)"


# -- processes -------------------------------------------------------------------------------


async def _exec(args: list[str], *, cwd: Path | None = None) -> tuple[int, str]:
    """Runs `args`; (exit status, stdout and stderr). Cancelling (the drill's timeout)
    kills it."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        raise
    return int(proc.returncode or 0), out.decode(errors="replace")


async def _run(args: list[str], *, what: str) -> None:
    code, out = await _exec(args)
    if code:
        raise DrillError(f"{what} failed: {out.strip()[-500:] or f'exit status {code}'}")
