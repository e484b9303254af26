"""The runbook's shell commands: complete and literal, for a replacement host that may have
only rsync (and ssh), or sentinel too. Every value is quoted with shlex; the only variables
are set at the top of each block with their default, so a person can run a block as printed.

The commands read the replica the way sentinel does (the same transport options, the same
protected names left out), but never through sentinel's runtime directory: on a new host
there is none (no ssh ControlMaster socket, no control directory)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from backup.target import Target
from backup.transfer import PROTECT
from backup.transport.rsyncd import RsyncdTarget
from backup.transport.ssh import SshTarget
from common.redaction import Redactor, command_secrets
from sentinel.config.database import DatabaseConfig

q = shlex.quote
# ReportContext.t: the comments inside the commands are in the report's language
Translate = Callable[[str, str], str]


def reach(target: Target) -> list[str]:
    """The rsync options that reach `target` from a new host: its password file (the name;
    rsync reads it), or ssh with its key, port and known hosts."""
    if isinstance(target, RsyncdTarget):
        args = [f"--contimeout={target.contimeout}"]
        if target.password_file is not None:
            args.append(f"--password-file={target.password_file}")
        return args
    if isinstance(target, SshTarget):
        ssh = ["ssh", "-o", "BatchMode=yes"]
        if target.ssh_port is not None:
            ssh += ["-p", str(target.ssh_port)]
        if target.identity_file is not None:
            ssh += ["-i", str(target.identity_file), "-o", "IdentitiesOnly=yes"]
        if target.known_hosts is not None:
            ssh += ["-o", f"UserKnownHostsFile={target.known_hosts}"]
        ssh += ["-o", f"StrictHostKeyChecking={target.strict_host_key_checking}"]
        return ["-e", shlex.join(ssh)]
    return []


def _root(target: Target, sub: str = "") -> str:
    base = target.path(sub).rstrip("/")
    return base if base.endswith(":") else base + "/"  # "host:" is the home, not "host:/"


def files_from_replica(target: Target, dest: Path) -> str:
    """Everything on the replica into `dest`: the current copy, without sentinel's own
    names (old versions, markers, partial transfers)."""
    argv = ["rsync", "-a", "--safe-links", *reach(target), *PROTECT]
    return "\n".join(
        [
            f"RESTORE={q(str(dest))}",
            'mkdir -p -- "$RESTORE"',
            shlex.join([*argv, _root(target)]) + ' "$RESTORE/"',
            'find "$RESTORE" -type f | wc -l',
        ]
    )


def files_with_sentinel(t: Translate, config_path: Path, name: str, dest: Path) -> str:
    """`sentinel backup restore`, which also restores as of a time from the kept versions."""
    return "\n".join(
        [
            f"RESTORE={q(str(dest))}",
            'AS_OF=""  # '
            + t("비우면 최신 사본, 또는 시각: ", "empty: the newest copy; or a time, e.g. ")
            + 'AS_OF="2026-11-20T14:30"',
            "sentinel -c "
            + q(str(config_path))
            + f" backup restore --name {q(name)}"
            + ' --to "$RESTORE" ${AS_OF:+--as-of "$AS_OF"}',
            'find "$RESTORE" -type f | wc -l',
        ]
    )


def files_from_keeper(history: Target, dest: Path) -> str:
    """The keeper's newest snapshot (the names sort by time: 20261202T101500.000000Z)."""
    listing = shlex.join(["rsync", "--list-only", *reach(history), _root(history)])
    argv = ["rsync", "-a", "--safe-links", *reach(history), *PROTECT]
    return "\n".join(
        [
            f"RESTORE={q(str(dest))}",
            f"SNAPSHOT=$({listing} | awk '{{print $5}}' "
            "| grep -E '^[0-9]{8}T[0-9]{6}[.][0-9]{6}Z$' | sort | tail -n 1)",
            'echo "snapshot: $SNAPSHOT"',
            'mkdir -p -- "$RESTORE"',
            shlex.join([*argv, history.path().rstrip("/")]) + '/"$SNAPSHOT"/ "$RESTORE/"',
            'find "$RESTORE" -type f | wc -l',
        ]
    )


def check_against_replica(target: Target, dest: Path) -> str:
    """A checksum comparison of the restored tree with the replica: no line printed means
    every file came back with the same bytes."""
    argv = ["rsync", "-rlcn", "--itemize-changes", "--safe-links", *reach(target), *PROTECT]
    return "\n".join(
        [
            f"RESTORE={q(str(dest))}",
            shlex.join([*argv, _root(target)]) + ' "$RESTORE/"',
        ]
    )


def postgresql(t: Translate, db: DatabaseConfig, target: Target, dest: Path) -> str:
    """Point-in-time recovery from the replica's shipped WAL, as `backup drill --database`
    does it (backup/database_drill.py): the newest base backup, restore_command reading
    the logs pulled from the replica, the target time, recovery.signal, pg_ctl start."""
    pg_bin = db.drill.pg_bin if db.drill is not None else Path("/usr/lib/postgresql/15/bin")
    base_dir = db.base_backup_dir
    database = db.drill.database if db.drill is not None else "postgres"
    user = db.drill.user if db.drill is not None else "postgres"
    lines = [
        'TARGET_TIME=""  # '
        + t(
            "비우면 전송된 마지막 로그까지, 또는 시각: ",
            "empty: as far as the shipped logs go; or ",
        )
        + '"2026-12-01 14:30:00+09"',
        f"RESTORE={q(str(dest))}",
        f"PGBIN={q(str(pg_bin))}",
        f"BASE_DIR={q(str(base_dir) if base_dir is not None else '/var/backups/postgresql')}",
        "PGOSUSER=postgres  # "
        + t("root로 실행할 때 postgres를 돌릴 계정", "the account postgres runs as (run as root)"),
        'mkdir -p -- "$RESTORE/logs"',
        shlex.join(["rsync", "-rt", *PROTECT, *reach(target), _root(target)]) + ' "$RESTORE/logs/"',
        "# "
        + t(
            "최신 기본 백업 (backup_label이 있는 디렉터리, 또는 -Ft의 base.tar)",
            "the newest base backup (a directory with backup_label, or base.tar from -Ft)",
        ),
        'if [ -f "$BASE_DIR/backup_label" ] || [ -f "$BASE_DIR/base.tar" ]; then BASE="$BASE_DIR"; '
        'else BASE=$(ls -1dt -- "$BASE_DIR"/*/ | head -n 1); fi',
        'echo "base backup: $BASE"',
        'if [ -f "$BASE/base.tar" ]; then mkdir -p "$RESTORE/data/pg_wal" '
        '&& tar -xf "$BASE/base.tar" -C "$RESTORE/data" && { [ ! -f "$BASE/pg_wal.tar" ] '
        '|| tar -xf "$BASE/pg_wal.tar" -C "$RESTORE/data/pg_wal"; }; '
        'else cp -a -- "$BASE" "$RESTORE/data"; fi',
        'chmod 700 "$RESTORE/data"',
        "# "
        + t(
            "복구 확인용 비공개 서버: 네트워크 없이 복구 위치의 소켓으로만 접속",
            "a private server for the check: no network, only the socket in the restore directory",
        ),
        'touch "$RESTORE/data/postgresql.conf"',
        "printf 'local all all trust\\n' > \"$RESTORE/pg_hba.conf\"",
        ': > "$RESTORE/pg_ident.conf"',
        'CONF=$(printf %s "$RESTORE" | sed "s/\'/\'\'/g")',
        'cat >> "$RESTORE/data/postgresql.auto.conf" <<EOF',
        'restore_command = \'cp "$CONF/logs/%f" "%p"\'',
        "recovery_target_action = 'promote'",
        "recovery_target_timeline = 'latest'",
        "archive_mode = 'off'",
        "listen_addresses = ''",
        "unix_socket_directories = '$CONF'",
        "hba_file = '$CONF/pg_hba.conf'",
        "ident_file = '$CONF/pg_ident.conf'",
        "hot_standby = 'on'",
        "EOF",
        '[ -z "$TARGET_TIME" ] || echo "recovery_target_time = \'$TARGET_TIME\'" '
        '>> "$RESTORE/data/postgresql.auto.conf"',
        'rm -f -- "$RESTORE/data/standby.signal" "$RESTORE/data/postmaster.pid"',
        'touch "$RESTORE/data/recovery.signal"',
        'if [ "$(id -u)" = 0 ]; then chown -R "$PGOSUSER:" "$RESTORE"; '
        'AS="runuser -u $PGOSUSER --"; else AS=""; fi',
        '$AS "$PGBIN/pg_ctl" -D "$RESTORE/data" -l "$RESTORE/postgres.log" -w start',
        "# "
        + t(
            "복구가 끝나고 승격될 때까지 기다림 (f: 복구 완료). 서버가 멈추면 로그를 보여 줌",
            "wait until recovery has finished and the server promoted (f: done); a server "
            "that stopped shows its log",
        ),
        'STATE=""',
        'while [ "$STATE" != f ] && $AS "$PGBIN/pg_ctl" -D "$RESTORE/data" status >/dev/null; '
        'do sleep 1; STATE=$("$PGBIN/psql" -At -h "$RESTORE" '
        f"-d {q(database)} -U {q(user)} "
        "-c 'select pg_is_in_recovery()' 2>/dev/null || true); done",
        'echo "pg_is_in_recovery: $STATE"',
        '[ "$STATE" = f ] || { tail -n 5 "$RESTORE/postgres.log"; false; }',
    ]
    return "\n".join(lines)


def by_commands(t: Translate, db: DatabaseConfig, target: Target, dest: Path) -> str | None:
    """Oracle/Tibero: the configured drill commands, with their {scratch}, {logs} and
    {target_time} as the variables set above them (None: no commands configured). A
    password in a command (`sys/pw@db`) is printed as ****: the runbook is kept on paper."""
    drill = db.drill
    if drill is None or not drill.restore_command:
        return None
    commands = [c for c in (drill.restore_command, drill.recover_command, drill.check_command) if c]
    redactor = Redactor([part for c in commands for part in command_secrets(c)])
    lines = [
        'TARGET_TIME=""  # '
        + t("비우면 전송된 마지막 로그까지", "empty: as far as the shipped logs go"),
        f"RESTORE={q(str(dest))}",
        'mkdir -p -- "$RESTORE/logs"',
        'cd -- "$RESTORE"',
        shlex.join(["rsync", "-rt", *PROTECT, *reach(target), _root(target)]) + ' "$RESTORE/logs/"',
    ]
    fill = {"scratch": '"$RESTORE"', "logs": '"$RESTORE/logs"', "target_time": '"$TARGET_TIME"'}
    for command in commands:
        for key, value in fill.items():  # not str.format: a command may hold awk's {print}
            command = command.replace("{" + key + "}", value)
        lines.append(redactor.redact(command))
    return "\n".join(lines)
