"""Replication benchmark (issues #6 and #18): sentinel against lsyncd and plain rsync.

    .venv/bin/python bench/replication.py [--quick] [--only latency,floor,initial,append,rss]
                                          [--repeats N] [--fs loop|tmpfs|none]

Writes bench/results/replication.md: Markdown ready for BENCHMARKS.md, machine facts included.
Everything runs on this machine (run it as root: it mounts filesystems): sshd on a free
127.0.0.1 port with generated keys, lsyncd (delay=1) with a generated config, each system on
a freshly made filesystem (bench/scratch_fs.py says why), repeats interleaved.

Latency is what a user of the replica sees: from IN_CLOSE_WRITE of the file on the source to
IN_MOVED_TO of its final name on the replica, both read by one inotify thread on one clock,
kept only once the replica's bytes hash to what was written (bench/arrival.py). In-place
writes under a final name (IN_CLOSE_WRITE there) are counted. CPU is user+sys of the whole
process tree of the replicator: the process, its live children, the children it reaped, and
its ssh ControlMaster, read from /proc; for plain rsync, getrusage of the reaped children.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: tests/ is not an installed package

from bench.arrival import Arrivals, Pending, Renames, digest, file_digest  # noqa: E402
from bench.scratch_fs import KINDS, Scratch, describe, scratch  # noqa: E402
from sensors.sim.broker import free_port, wait_listening  # noqa: E402
from tests.fixtures.poll import until_sync  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "replication.md"
# sentinel's process: imports what the daemon's replication imports, not this harness
CHILD = ROOT / "bench" / "replicator_child.py"
TICK = os.sysconf("SC_CLK_TCK")
SUBDIRS = [f"d{i}" for i in range(8)]
MIN_SIZE, MAX_SIZE = 4 << 10, 256 << 10
SENTINEL, LSYNCD, RSYNC = "sentinel", "lsyncd delay=1", "rsync -a"
# sentinel with the operator's choice of CPU over latency (docs/architecture.md)
WIDE, WIDE_BUDGET = "sentinel latency_budget=1s", 1.0
# ssh only: sentinel with a stream key (backup/stream.py), one session to `sentinel receive`
STREAM = "sentinel stream"
PARTS = ("latency", "floor", "initial", "append", "rss", "outage")
DEFAULT_PARTS = ("latency", "floor", "initial", "append", "rss")


# -- processes and CPU -------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, float, float, str]]:
    """pid -> (ppid, own cpu s, reaped children cpu s, cmdline)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        own = (int(fields[11]) + int(fields[12])) / TICK
        reaped = (int(fields[13]) + int(fields[14])) / TICK
        table[int(name)] = (ppid, own, reaped, cmd)
    return table


def descendants(root: int, table: dict[int, tuple[int, float, float, str]]) -> set[int]:
    out = {root}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, *_rest) in table.items():
            if ppid in out and pid not in out:
                out.add(pid)
                grew = True
    return out


def tree_cpu(root: int, marker: str) -> float:
    """CPU seconds of `root`, its live descendants, the children they reaped, and any
    process whose command line holds `marker` (the detached ssh ControlMaster)."""
    table = _proc_table()
    pids = descendants(root, table) if root in table else set()
    pids |= {pid for pid, row in table.items() if marker and marker in row[3]}
    return sum(table[p][1] + table[p][2] for p in pids if p in table)


def remote_cpu() -> float:
    """CPU seconds of the backup host's side: every process of the bench's replica
    account (sshd's session processes, the remote rsyncs they reaped, `sentinel
    receive`). Neither system's own figure holds it; a remote rsync that outlived its
    session's process would be missed, and none does here."""
    uid = bench_account()[0]
    total = 0.0
    for pid, row in _proc_table().items():
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
        except OSError:
            continue
        total += row[1] + row[2]
    return total


def kill_tree(root: int) -> None:
    table = _proc_table()
    for pid in sorted(descendants(root, table) if root in table else set(), reverse=True):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def kill_marked(marker: str) -> None:
    for pid, row in _proc_table().items():
        if marker in row[3] and pid != os.getpid():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


# -- sshd on loopback --------------------------------------------------------------------


# The replica's account on the ssh side, as docs/install.md sets one up (`sentinel-replica`:
# a system user with /bin/sh). Logging in as root here ran root's ~/.bashrc for every session
# (on this machine `pyenv init`: ~85 ms and ~100 processes per rsync run), which is not what
# a backup host does and made every ssh run of both systems ~85 ms slower.
BENCH_USER = "sentinel-bench"
BENCH_HOME = Path("/var/lib/sentinel-bench")


def bench_account() -> tuple[int, int]:
    """(uid, gid) of the bench's replica account, made on first use (removed by `drop`)."""
    import pwd

    try:
        pw = pwd.getpwnam(BENCH_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--shell",
                "/bin/sh",
                "--home-dir",
                str(BENCH_HOME),
                "--create-home",
                BENCH_USER,
            ],
            check=True,
        )
        # a new system account is locked ("!"), and sshd without PAM refuses a locked one:
        # "*" is no password, not locked
        subprocess.run(["usermod", "--password", "*", BENCH_USER], check=True)
        pw = pwd.getpwnam(BENCH_USER)
    return pw.pw_uid, pw.pw_gid


def drop_bench_account() -> None:
    subprocess.run(["userdel", "--remove", BENCH_USER], check=False, capture_output=True)


def give(path: Path) -> None:
    """The replica tree to the bench account (it receives as that user), and every parent
    traversable."""
    uid, gid = bench_account()
    for dirpath, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(dirpath, name), uid, gid)
    os.lchown(path, uid, gid)
    for parent in path.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)


class Sshd:
    """sshd on a free 127.0.0.1 port, generated host and user keys, known_hosts checked,
    logins as BENCH_USER."""

    user = BENCH_USER

    def __init__(self, base: Path) -> None:
        self.base = base
        base.mkdir(parents=True)
        bench_account()
        host_key, self.identity = base / "host_ed25519", base / "id_ed25519"
        self.stream_identity = base / "id_stream"
        for key in (host_key, self.identity, self.stream_identity):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
        self.allow_stream(None)
        self.port = free_port()
        self.known_hosts = base / "known_hosts"
        self.known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {host_key.with_suffix('.pub').read_text()}"
        )
        self.conf = base / "sshd_config"
        self.conf.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"PidFile {base}/sshd.pid\nAuthorizedKeysFile .ssh/authorized_keys\n"
            "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            f"PermitRootLogin no\nAllowUsers {BENCH_USER}\nMaxStartups 50\nMaxSessions 50\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def allow_stream(self, replica: Path | None) -> None:
        """The rsync key, and the stream key forced to `sentinel receive replica`
        (docs/transport.md); the receiver runs with Debian's python3 and this checkout
        (the bench's own interpreter lives under /root, which the account cannot read)."""
        uid, gid = bench_account()
        dot_ssh = BENCH_HOME / ".ssh"
        dot_ssh.mkdir(mode=0o700, exist_ok=True)
        authorized = dot_ssh / "authorized_keys"
        text = self.identity.with_suffix(".pub").read_text()
        if replica is not None:
            command = f"env PYTHONPATH={ROOT} /usr/bin/python3 -m sentinel receive {replica}"
            text += f'command="{command}",restrict ' + (
                self.stream_identity.with_suffix(".pub").read_text()
            )
        authorized.write_text(text)
        authorized.chmod(0o600)
        for p in (dot_ssh, authorized):
            os.chown(p, uid, gid)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-f", str(self.conf), "-e"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_listening(self.port, self.proc)

    def stop(self) -> None:
        """Stops the listener and every session it forked (a real outage: the clients'
        ControlMaster connections drop too)."""
        if self.proc is None:
            return
        kill_tree(self.proc.pid)
        self.proc.wait()
        self.proc = None

    def ssh_args(self, control_dir: Path) -> list[str]:
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-p",
            str(self.port),
            "-i",
            str(self.identity),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={control_dir}/cm-%C",
            "-o",
            "ControlPersist=60",
        ]


# -- workload ------------------------------------------------------------------------------


class Writer:
    """Writes random 4-256 KiB files into the source; the arrival clock expects each one."""

    def __init__(self, source: Path, arrivals: Arrivals, seed: int) -> None:
        self.source = source
        self.arrivals = arrivals
        self.rng = random.Random(seed)
        self.count = 0

    def one(self, tag: str) -> None:
        self.count += 1
        rel = f"{SUBDIRS[self.count % len(SUBDIRS)]}/{tag}-{self.count:06d}.bin"
        data = self.rng.randbytes(self.rng.randint(MIN_SIZE, MAX_SIZE))
        self.arrivals.expect(Pending(rel, len(data), digest(data)))
        with open(self.source / rel, "wb") as f:
            f.write(data)

    def steady(self, tag: str, rate: float, seconds: float) -> tuple[int, float]:
        n = int(rate * seconds)
        t0 = time.monotonic()
        for i in range(n):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.one(tag)
        return n, time.monotonic() - t0


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def settled(cond: Callable[[], bool], limit: float, what: str, interval: float = 0.05) -> bool:
    """`until_sync` as a yes/no: a workload that does not drain in time is recorded (its
    files counted missing), not the end of the whole benchmark."""
    try:
        until_sync(cond, limit, what, interval=interval)
    except TimeoutError:
        return False
    return True


# -- the systems under test --------------------------------------------------------------


class System:
    """A running replicator (sentinel or lsyncd) of `source` to `target`."""

    label = ""

    def __init__(self, work: Path, source: Path, target: str, sshd: Sshd | None) -> None:
        self.work = work
        self.source = source
        self.target = target
        self.sshd = sshd
        self.control = work / "rt"  # short: ControlPath sockets live here
        self.control.mkdir(mode=0o700)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(work / "system.log", "wb")  # noqa: SIM115 - closed in stop()

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv(), stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def cpu(self) -> float:
        assert self.proc is not None
        return tree_cpu(self.proc.pid, str(self.control))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def runs(self) -> int | None:
        """Ship runs (rsync runs, or sentinel's in-process copies) so far; None: unknown."""
        return None

    def stop(self) -> None:
        if self.proc is not None:
            kill_tree(self.proc.pid)
            self.proc.wait()
        kill_marked(str(self.control))
        self.log.close()


class Sentinel(System):
    label = "sentinel"

    budget: float | None = None
    stream: bool = False

    def argv(self) -> list[str]:
        cfg: dict[str, object] = {
            "state": str(self.work / "state"),
            "source": str(self.source),
            "target": self.target,
            "runtime": str(self.control),
        }
        if self.budget is not None:
            cfg["latency_budget"] = self.budget
        cfg["runs_file"] = str(self.work / "runs")
        if self.sshd is not None:
            cfg |= {
                "ssh_port": self.sshd.port,
                "identity": str(self.sshd.identity),
                "known_hosts": str(self.sshd.known_hosts),
            }
            if self.stream:
                cfg["stream_identity"] = str(self.sshd.stream_identity)
        return [sys.executable, str(CHILD), "replicator", json.dumps(cfg)]

    def runs(self) -> int | None:
        assert self.proc is not None
        answer = self.work / "runs"
        answer.unlink(missing_ok=True)
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                return int(answer.read_text())
            time.sleep(0.01)
        return None


class Lsyncd(System):
    def __init__(self, *args: object, delay: int) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.delay = delay
        self.label = f"lsyncd delay={delay}"

    def argv(self) -> list[str]:
        rsync = ""
        if self.sshd is not None:
            rsh = shlex.join(self.sshd.ssh_args(self.control)[:])
            rsync = f", rsync = {{ rsh = {json.dumps(rsh)} }}"
        conf = self.work / "lsyncd.conf"
        conf.write_text(
            f"settings {{ nodaemon = true, logfile = {json.dumps(str(self.work / 'lsyncd.log'))},"
            f" statusFile = {json.dumps(str(self.work / 'lsyncd.status'))} }}\n"
            f"sync {{ default.rsync, source = {json.dumps(str(self.source))}, "
            f"target = {json.dumps(self.target)}, delay = {self.delay}{rsync} }}\n"
        )
        return ["lsyncd", str(conf)]

    def runs(self) -> int | None:
        # lsyncd logs each rsync it calls for a list of changes (the startup one aside)
        try:
            text = (self.work / "lsyncd.log").read_text(errors="replace")
        except OSError:
            return None
        return text.count("Calling rsync with filter-list")


# -- scenarios ---------------------------------------------------------------------------


@dataclass
class Plan:
    low_rate: int = 20
    low_s: float = 60.0
    high_rate: int = 200
    high_s: float = 30.0
    ssh_s: float = 60.0
    tree_files: int = 100_000
    dir_shapes: tuple[int, ...] = (1_000, 10_000)
    append_steps: int = 100  # 100 x 100 KiB = the 10 MB file
    append_chunk: int = 100 << 10
    append_every: float = 0.1
    repeats: int = 2
    fs: str = "loop"
    fs_gb: int = 8
    settle: float = 3.0
    outage: float = 300.0

    def workloads(self, target: str) -> list[tuple[str, int, float]]:
        low = (f"{target} {self.low_rate}/s", self.low_rate, self.low_s)
        if target == "ssh":
            return [(low[0], low[1], self.ssh_s)]
        return [low, (f"{target} {self.high_rate}/s", self.high_rate, self.high_s)]


def order(kinds: list[str], repeat: int) -> list[str]:
    """Interleaved repeats: every other repeat runs the systems in the reverse order."""
    return kinds if repeat % 2 == 0 else kinds[::-1]


def make_system(kind: str, work: Path, source: Path, target: str, sshd: Sshd | None) -> System:
    if kind in (SENTINEL, WIDE, STREAM):
        system = Sentinel(work, source, target, sshd)
        if kind == WIDE:
            system.budget, system.label = WIDE_BUDGET, WIDE
        if kind == STREAM:
            system.stream, system.label = True, STREAM
        return system
    return Lsyncd(work, source, target, sshd, delay=1)


def layout(fs: Path) -> tuple[Path, Path]:
    """src/d0..d7 and an existing replica/d0..d7 (lsyncd's rsync does not create its
    target's parents; sentinel's first sync accepts an existing root without files)."""
    source, replica = fs / "src", fs / "dst" / "replica"
    for sub in SUBDIRS:
        (source / sub).mkdir(parents=True)
        (replica / sub).mkdir(parents=True)
    return source, replica


def started(system: System, arrivals: Arrivals, writer: Writer, what: str) -> None:
    """The system runs, its watches are in place and one file went through."""
    system.start()
    writer.one("probe")
    if not settled(lambda: arrivals.outstanding() == 0 or not system.alive(), 120, what):
        raise RuntimeError(f"{what}: the probe file never reached the replica")
    if not system.alive():
        raise RuntimeError(f"{what}: exited, see {system.work}/system.log")
    arrivals.take()


def run_latency(
    kind: str, target_kind: str, fs: Path, sshd: Sshd | None, plan: Plan
) -> dict[str, dict[str, Any]]:
    source, replica = layout(fs)
    target = str(replica)
    if target_kind == "ssh":
        give(replica)
        target = f"{BENCH_USER}@127.0.0.1:{replica}"
        assert sshd is not None
        sshd.allow_stream(replica if kind == STREAM else None)
    system = make_system(kind, fs, source, target, sshd)
    arrivals = Arrivals(source, replica, SUBDIRS)
    arrivals.start()
    writer = Writer(source, arrivals, seed=6)
    out: dict[str, dict[str, Any]] = {}
    try:
        started(system, arrivals, writer, f"{kind} {target_kind}")
        time.sleep(plan.settle)
        for name, rate, seconds in plan.workloads(target_kind):
            runs0, cpu0, far0 = system.runs(), system.cpu(), remote_cpu()
            n, secs = writer.steady(f"r{rate}", rate, seconds)
            drained = settled(lambda: arrivals.outstanding() == 0, 120 + seconds, name)
            cpu = system.cpu() - cpu0
            far = remote_cpu() - far0 if target_kind == "ssh" else None
            runs1 = system.runs()
            runs = None if runs0 is None or runs1 is None else runs1 - runs0
            lat, in_place = arrivals.take()
            unseen, missing = arrivals.sweep() if not drained else (0, 0)
            out[name] = {
                "p50": pct(lat, 50),
                "p99": pct(lat, 99),
                "max": max(lat) if lat else None,
                "cpu": cpu,
                "remote_cpu": far,
                "runs": runs,
                "files": n,
                "write_s": secs,
                "in_place": in_place,
                "unseen": unseen,
                "missing": missing,
                "overflows": arrivals.overflows,
            }
            print(
                f"  {kind:15} {name:12} p50={_ms(out[name]['p50'])} p99={_ms(out[name]['p99'])}"
                f" cpu={cpu:.2f}s runs={runs} in_place={in_place} missing={missing}"
                + (f" remote_cpu={far:.2f}s" if far is not None else ""),
                flush=True,
            )
            time.sleep(plan.settle)
    finally:
        system.stop()
        arrivals.stop()
    return out


def rsync_floor(fs: Path, sshd: Sshd, repeats: int = 20) -> dict[str, float]:
    """One rsync of one 8 KiB file, warm transport: when its final name appeared on the
    target (IN_MOVED_TO) and when rsync exited, both from the spawn, median and min."""
    src, dst, control = fs / "fsrc", fs / "fdst", fs / "frt"
    for d in (src, dst):
        d.mkdir()
    control.mkdir(mode=0o700)
    renames = Renames(dst)
    renames.start()
    out = {}
    try:
        for kind in ("local", "ssh"):
            ext: list[str] = []
            dest = str(dst) + "/"
            if kind == "ssh":
                ext = ["-e", shlex.join(sshd.ssh_args(control))]
                give(dst)
                dest = f"{BENCH_USER}@127.0.0.1:{dst}/"
            seen, exited = [], []
            for i in range(repeats + 1):
                f = src / f"one-{kind}-{i}.bin"
                f.write_bytes(os.urandom(8192))
                t0 = time.monotonic()
                subprocess.run(["rsync", "-a", *ext, str(f), dest], check=True)
                t_exit = time.monotonic()
                t_seen = renames.wait_for(f.name)
                if i and t_seen is not None:  # the first run warms caches and the ControlMaster
                    seen.append(t_seen - t0)
                    exited.append(t_exit - t0)
            out[f"{kind}_seen_median"] = statistics.median(seen)
            out[f"{kind}_seen_min"] = min(seen)
            out[f"{kind}_exit_median"] = statistics.median(exited)
            out[f"{kind}_exit_min"] = min(exited)
    finally:
        renames.stop()
        kill_marked(str(control))
    return out


def make_tree(root: Path, files: int, dirs: int) -> None:
    """`files` small files (50-2000 bytes) spread evenly over `dirs` directories, 100 a level."""
    rng = random.Random(100)
    current = None
    for i in range(files):
        leaf = i * dirs // files
        d = root / f"a{leaf // 100:03d}" / f"b{leaf % 100:02d}"
        if d != current:
            d.mkdir(parents=True)
            current = d
        (d / f"f{i:06d}.txt").write_bytes(rng.randbytes(rng.randint(50, 2000)))


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def plain_rsync(src: Path, dst: Path) -> tuple[float, float]:
    """(wall s, CPU s) of `rsync -a src/ dst/`."""
    c0, t0 = children_cpu(), time.monotonic()
    subprocess.run(["rsync", "-a", f"{src}/", f"{dst}/"], check=True)
    return time.monotonic() - t0, children_cpu() - c0


def memory(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) / 1024
    return out


def sentinel_synced(state: Path) -> bool:
    """The first full pass is done (backup_state.last_full is set)."""
    from sentinel.store import open_readonly

    try:
        conn = open_readonly(state)
    except sqlite3.Error:  # not created yet, or mid-migration
        return False
    if conn is None:
        return False
    try:
        row = conn.execute("SELECT last_full FROM backup_state").fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return bool(row and row[0] is not None)


def lsyncd_synced(log: Path) -> bool:
    """lsyncd logs `Startup of "<source>" finished` once its initial rsync ended."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return False
    return any("Startup of" in ln and "finished" in ln for ln in text.splitlines())


def run_initial(
    kind: str, fs: Path, files: int, dirs: int, plan: Plan, reconcile: bool, rss_only: bool
) -> dict[str, Any]:
    """Initial sync of a fresh tree to an empty local replica; for sentinel also the full
    reconcile of the then unchanged tree, interleaved with `rsync -a` of it."""
    src, replica = fs / "src", fs / "dst" / "replica"
    make_tree(src, files, dirs)
    replica.parent.mkdir()
    os.sync()  # the tree's own writeback must not land inside the measurement
    out: dict[str, Any] = {"files": files, "dirs": dirs}
    if kind == RSYNC:
        replica.mkdir()
        out["wall"], out["cpu"] = plain_rsync(src, replica)
        out["copied"] = copied(replica)
        print(f"  {kind:15} {dirs} dirs: {out['wall']:.1f} s, cpu {out['cpu']:.1f} s", flush=True)
        return out
    if kind != SENTINEL:
        replica.mkdir()
    system = make_system(kind, fs, src, str(replica), None)
    done: Callable[[], bool] = (
        (lambda: sentinel_synced(fs / "state"))
        if kind == SENTINEL
        else (lambda: lsyncd_synced(fs / "lsyncd.log"))
    )
    try:
        t0 = time.monotonic()
        system.start()
        if not settled(lambda: done() or not system.alive(), 3600, "initial sync", 0.05):
            raise RuntimeError(f"{kind}: initial sync of {files} files did not end")
        if not system.alive():
            raise RuntimeError(f"{kind} exited, see {fs}/system.log")
        out["wall"], out["cpu"] = time.monotonic() - t0, system.cpu()
        out["copied"] = copied(replica)  # at the moment it said done
        time.sleep(plan.settle)
        assert system.proc is not None
        out |= memory(system.proc.pid)
    finally:
        system.stop()
    print(
        f"  {kind:15} {dirs} dirs: {out['wall']:.1f} s, cpu {out['cpu']:.1f} s, "
        f"rss {out.get('VmRSS', 0):.0f} MB",
        flush=True,
    )
    if reconcile and kind == SENTINEL and not rss_only:
        plain, ours = [], []
        for _ in range(3):  # interleaved on the same filesystem: same cache state for both
            plain.append(plain_rsync(src, replica)[0])
            ours.append(reconcile_once(fs, src, replica))
        out["reconcile"], out["reconcile_rsync"] = statistics.median(ours), statistics.median(plain)
        print(
            f"  reconcile: sentinel {out['reconcile']:.2f} s, rsync -a "
            f"{out['reconcile_rsync']:.2f} s",
            flush=True,
        )
    return out


def copied(replica: Path) -> int:
    """Tree files (f*.txt) on the replica, versions and markers left out."""
    return sum(
        1
        for dirpath, _dirs, names in os.walk(replica)
        if ".sentinel" not in dirpath
        for name in names
        if name.startswith("f")
    )


def reconcile_once(fs: Path, src: Path, replica: Path) -> float:
    cfg = {"state": str(fs / "state"), "source": str(src), "target": str(replica)}
    cfg["runtime"] = str(fs / "rt")
    res = subprocess.run(
        [sys.executable, str(CHILD), "reconcile", json.dumps(cfg)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return float(res.stdout.strip().splitlines()[-1])


def tree_bytes(root: Path) -> tuple[int, int]:
    """(bytes, files) of the regular files under root."""
    total = n = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
                n += 1
    return total, n


def run_append(kind: str, scratch_fs: Scratch, plan: Plan) -> dict[str, Any]:
    """A log grown by `append_chunk` every `append_every` s, closed after each append: what
    it costs on the replica (file + kept versions) and in bytes written."""
    fs = scratch_fs.path
    source, replica = layout(fs)
    system = make_system(kind, fs, source, str(replica), None)
    arrivals = Arrivals(source, replica, SUBDIRS)
    arrivals.start()
    writer = Writer(source, arrivals, seed=8)
    rel = "d0/archive.log"
    rng = random.Random(9)
    try:
        started(system, arrivals, writer, f"{kind} append")
        time.sleep(plan.settle)
        written0, cpu0 = scratch_fs.written_kb(), system.cpu()
        grown = b""
        t0 = time.monotonic()
        for i in range(plan.append_steps):
            delay = t0 + i * plan.append_every - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            chunk = rng.randbytes(plan.append_chunk)
            with open(source / rel, "ab") as f:
                f.write(chunk)
            grown += chunk
        final = digest(grown)
        if not settled(lambda: file_digest(str(replica / rel)) == final, 120, "append", 0.1):
            raise RuntimeError(f"{kind}: the appended file never matched on the replica")
        time.sleep(plan.settle)
        cpu = system.cpu() - cpu0
        written1 = scratch_fs.written_kb()
        _lat, in_place = arrivals.take()
    finally:
        system.stop()
        arrivals.stop()
    total, _files = tree_bytes(replica)
    versions, nversions = tree_bytes(replica / ".sentinel-versions")
    out: dict[str, Any] = {
        "final": len(grown),
        "replica_file": (replica / rel).stat().st_size,
        "versions": versions,
        "version_files": nversions,
        "replica_total": total,  # the file, its versions, markers, the probe
        "written": None if written0 is None or written1 is None else (written1 - written0) << 10,
        "cpu": cpu,
        "in_place": in_place,
    }
    print(
        f"  {kind:15} append: replica+versions {(out['replica_file'] + versions) / 1e6:.1f} MB "
        f"({nversions} versions), final {len(grown) / 1e6:.1f} MB, written "
        f"{'-' if out['written'] is None else _mb(out['written'])}, in_place={in_place}",
        flush=True,
    )
    return out


def run_outage(fs: Path, sshd: Sshd, plan: Plan) -> dict[str, float | int]:
    """ssh target: sshd (and its sessions) down, writes at 20/s, sshd up, time to catch up."""
    source, replica = layout(fs)
    give(replica)
    system = Sentinel(fs, source, f"{BENCH_USER}@127.0.0.1:{replica}", sshd)
    arrivals = Arrivals(source, replica, SUBDIRS)
    arrivals.start()
    writer = Writer(source, arrivals, seed=7)
    try:
        started(system, arrivals, writer, "outage")
        sshd.stop()
        n, _ = writer.steady("outage", plan.low_rate, plan.outage)
        cpu0 = system.cpu()
        t0 = time.monotonic()
        sshd.start()
        caught = settled(lambda: arrivals.outstanding() == 0, 600, "the catch-up", interval=0.02)
        catch_up = time.monotonic() - t0
        return {
            "outage_s": plan.outage,
            "files": n,
            "catch_up_s": catch_up,
            "caught_up": int(caught),
            "cpu_catch_up": system.cpu() - cpu0,
            "missing": arrivals.sweep()[1] if not caught else 0,
        }
    finally:
        system.stop()
        arrivals.stop()
        if sshd.proc is None:
            sshd.start()


# -- the replicator's own process ----------------------------------------------------------


# -- report --------------------------------------------------------------------------------


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1000:.0f} ms" if v < 10 else f"{v:.1f} s"


def machine(fs: str, fs_gb: int) -> dict[str, str]:
    mem = next(
        ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")
    )
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    rsync = subprocess.run(["rsync", "--version"], capture_output=True, text=True).stdout
    lsyncd = subprocess.run(["lsyncd", "--version"], capture_output=True, text=True).stdout
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{int(mem.split()[1]) // 1024} MiB",
        "kernel": platform.release(),
        "os": " ".join(Path("/etc/debian_version").read_text().split()) + " (Debian)",
        "python": platform.python_version(),
        "rsync": rsync.splitlines()[0] if rsync else "?",
        "lsyncd": lsyncd.strip().splitlines()[0] if lsyncd else "?",
        "ssh": ssh.strip(),
        "fs": describe(fs, fs_gb),
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


Runs = list[dict[str, Any]]


def values(runs: Runs | None, key: str) -> list[float]:
    return [float(r[key]) for r in runs or [] if r.get(key) is not None]


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def cell(xs: list[float], fmt: Callable[[float], str]) -> str:
    if not xs:
        return "-"
    text = fmt(statistics.median(xs))
    return text if len(xs) == 1 else f"{text} ({fmt(min(xs))}-{fmt(max(xs))})"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def _s(v: float) -> str:
    return f"{v:.2f} s" if v < 10 else f"{v:.1f} s"


def _count(v: float) -> str:
    return f"{v:.0f}"


def _mb(v: float) -> str:
    return f"{v / 1e6:.1f} MB"


@dataclass
class Row:
    label: str
    runs: dict[str, Runs | None]  # system -> runs
    key: str
    fmt: Callable[[float], str]
    goal: str = ""
    # (sentinel, lsyncd, rsync) medians -> met?
    check: Callable[[float | None, float | None, float | None], bool | None] | None = None


def _le(limit: float) -> Callable[[float | None, float | None, float | None], bool | None]:
    return lambda s, _l, _r: None if s is None else s <= limit


def _vs(
    other: int, factor: float
) -> Callable[[float | None, float | None, float | None], bool | None]:
    def check(s: float | None, lsyncd: float | None, rsync: float | None) -> bool | None:
        ref = (lsyncd, rsync)[other]
        return None if s is None or ref is None else s <= factor * ref

    return check


def goal_rows(data: dict[str, Any], plan: Plan) -> list[Row]:
    lat, ini, app = data.get("latency", {}), data.get("initial", {}), data.get("append", {})
    rows: list[Row] = []
    lo, hi = f"{plan.low_rate}/s", f"{plan.high_rate}/s"

    def lrow(
        wl: str,
        key: str,
        label: str,
        fmt: Callable[[float], str],
        goal: str = "",
        check: Any = None,
    ) -> None:
        runs = {SENTINEL: lat.get(f"{SENTINEL}|{wl}"), LSYNCD: lat.get(f"{LSYNCD}|{wl}")}
        if any(runs.values()):
            rows.append(Row(label, runs, key, fmt, goal, check))

    n_lo, n_hi = f"{plan.low_rate} writes/s", f"{plan.high_rate} writes/s"
    lrow(f"local {lo}", "p50", f"{n_lo} {plan.low_s:.0f} s local: p50", _ms)
    lrow(f"local {lo}", "p99", f"{n_lo} {plan.low_s:.0f} s local: p99", _ms, "<= 100 ms", _le(0.1))
    lrow(
        f"local {lo}", "cpu", f"{n_lo} {plan.low_s:.0f} s local: CPU", _s, "<= lsyncd", _vs(0, 1.0)
    )
    lrow(f"local {hi}", "p50", f"{n_hi} {plan.high_s:.0f} s local: p50", _ms)
    lrow(
        f"local {hi}", "p99", f"{n_hi} {plan.high_s:.0f} s local: p99", _ms, "no worse than main's"
    )
    lrow(
        f"local {hi}",
        "cpu",
        f"{n_hi} {plan.high_s:.0f} s local: CPU",
        _s,
        "<= 0.8 x lsyncd",
        _vs(0, 0.8),
    )
    lrow(f"ssh {lo}", "p50", f"{n_lo} {plan.ssh_s:.0f} s ssh: p50", _ms)
    lrow(f"ssh {lo}", "p99", f"{n_lo} {plan.ssh_s:.0f} s ssh: p99", _ms, "<= 400 ms", _le(0.4))
    lrow(f"ssh {lo}", "cpu", f"{n_lo} {plan.ssh_s:.0f} s ssh: CPU", _s, "<= lsyncd", _vs(0, 1.0))
    for where, rate, secs in (("local", lo, plan.low_s), ("local", hi, plan.high_s)):
        n = rate.replace("/s", " writes/s")
        lrow(f"{where} {rate}", "runs", f"{n} {secs:.0f} s {where}: runs", _count)
    lrow(f"ssh {lo}", "runs", f"{n_lo} {plan.ssh_s:.0f} s ssh: runs", _count)
    lrow(f"ssh {lo}", "remote_cpu", f"{n_lo} {plan.ssh_s:.0f} s ssh: backup host's CPU", _s)
    stream = {SENTINEL: lat.get(f"{STREAM}|ssh {lo}"), LSYNCD: lat.get(f"{LSYNCD}|ssh {lo}")}
    if stream[SENTINEL]:
        what = f"{n_lo} {plan.ssh_s:.0f} s ssh, sentinel with a stream key"
        rows.append(Row(f"{what}: p50", stream, "p50", _ms))
        rows.append(Row(f"{what}: p99", stream, "p99", _ms, "<= 400 ms", _le(0.4)))
        rows.append(Row(f"{what}: CPU", stream, "cpu", _s, "<= lsyncd", _vs(0, 1.0)))
        rows.append(Row(f"{what}: backup host's CPU", stream, "remote_cpu", _s))
    for where, rate, secs in (
        ("local", lo, plan.low_s),
        ("local", hi, plan.high_s),
        ("ssh", lo, plan.ssh_s),
    ):
        wide = {
            SENTINEL: lat.get(f"{WIDE}|{where} {rate}"),
            LSYNCD: lat.get(f"{LSYNCD}|{where} {rate}"),
        }
        if wide[SENTINEL]:
            n = rate.replace("/s", " writes/s")
            what = f'{n} {secs:.0f} s {where}, sentinel with `latency_budget = "1s"`'
            rows.append(Row(f"{what}: p99", wide, "p99", _ms, "<= lsyncd's", _vs(0, 1.0)))
            rows.append(Row(f"{what}: CPU", wide, "cpu", _s, "<= lsyncd", _vs(0, 1.0)))
            rows.append(Row(f"{what}: runs", wide, "runs", _count))
    for dirs in plan.dir_shapes:
        runs = {k: ini.get(f"{k}|{dirs}") for k in (SENTINEL, LSYNCD, RSYNC)}
        if not runs[RSYNC] and not runs[SENTINEL]:
            continue
        what = f"initial sync, {plan.tree_files:,} files in {dirs:,} dirs"
        if runs[RSYNC]:
            rows.append(Row(f"{what}: wall", runs, "wall", _s, "<= 1.2 x rsync -a", _vs(1, 1.2)))
            rows.append(Row(f"{what}: CPU", runs, "cpu", _s))
        rec = ini.get(f"{SENTINEL}|{dirs}")
        if rec and values(rec, "reconcile"):
            rows.append(
                Row(
                    f"full reconcile of the unchanged {plan.tree_files:,}-file tree "
                    f"({dirs:,} dirs): wall",
                    {SENTINEL: rec, RSYNC: [{"reconcile": r["reconcile_rsync"]} for r in rec]},
                    "reconcile",
                    _s,
                    "<= 1.2 x rsync -a",
                    _vs(1, 1.2),
                )
            )
    big = max(plan.dir_shapes)
    runs = {SENTINEL: ini.get(f"{SENTINEL}|{big}"), LSYNCD: ini.get(f"{LSYNCD}|{big}")}
    if any(values(r, "VmRSS") for r in runs.values()):
        rows.append(
            Row(
                f"RSS watching {big:,} dirs (MB)",
                runs,
                "VmRSS",
                lambda v: f"{v:.0f}",
                "<= 60 MB",
                _le(60),
            )
        )
        rows.append(Row(f"peak RSS, {big:,} dirs (MB)", runs, "VmHWM", lambda v: f"{v:.0f}"))
    if app:
        runs = {k: app.get(k) for k in (SENTINEL, LSYNCD)}
        for r in (x for rs in runs.values() for x in rs or []):
            r["kept"] = r["replica_file"] + r["versions"]
            r["kept_ratio"] = r["kept"] / r["final"]
        final = plan.append_steps * plan.append_chunk
        what = f"append ({_mb(final)} in {plan.append_steps} closes)"
        rows.append(Row(f"{what}: replica + versions", runs, "kept", _mb))
        rows.append(
            Row(
                f"{what}: (replica + versions) / final size",
                runs,
                "kept_ratio",
                lambda v: f"{v:.2f}",
                "<= 2",
                _le(2.0),
            )
        )
        rows.append(Row(f"{what}: versions kept", runs, "version_files", lambda v: f"{v:.0f}"))
        rows.append(Row(f"{what}: bytes written to the fs", runs, "written", _mb))
        rows.append(Row(f"{what}: CPU", runs, "cpu", _s))
    return rows


def report(data: dict[str, Any], argv: list[str], plan: Plan) -> str:
    m = data["machine"]
    lines = [
        "## Replication: sentinel vs lsyncd vs plain rsync (issue 18)",
        "",
        f"Command: `{' '.join(argv)}` ({data['started']}, took {data['took'] / 60:.1f} min, "
        f"{plan.repeats} interleaved repeat(s), load average {data['load_start']} at the "
        f"start and {data['load_end']} at the end)",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in m.items()),
        "",
        "Each system runs alone on its own freshly made filesystem (source, replica and "
        "sentinel's state on it), so none pays for inodes another freed. Latency: from "
        "IN_CLOSE_WRITE of a file on the source to IN_MOVED_TO of its final name on the "
        "replica, both read by one inotify thread, kept once the replica's bytes hash right. "
        "Files: random 4-256 KiB, incompressible, in 8 directories. CPU: user+sys of the "
        "replicator's whole process tree (children reaped or alive, ssh ControlMaster); the "
        "backup host's CPU is a row of its own: every process of the replica account (sshd's "
        "sessions, the remote rsyncs they reaped, `sentinel receive`). sentinel: "
        "`backup.Replicator` with default settings wired as the daemon wires it; lsyncd: "
        "`default.rsync`, `delay = 1`; plain: `rsync -a src/ dst/`. Cells: median (min-max) "
        "over repeats.",
        "",
        f"| workload | {SENTINEL} | {LSYNCD} | {RSYNC} | sentinel / lsyncd | "
        "sentinel / rsync | goal | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in goal_rows(data, plan):
        meds = [med(values(row.runs.get(k), row.key)) for k in (SENTINEL, LSYNCD, RSYNC)]
        met = row.check(*meds) if row.check else None
        cells = [cell(values(row.runs.get(k), row.key), row.fmt) for k in (SENTINEL, LSYNCD, RSYNC)]
        lines.append(
            f"| {row.label} | {' | '.join(cells)} | {_ratio(meds[0], meds[1])} | "
            f"{_ratio(meds[0], meds[2])} | {row.goal} | "
            + ("" if met is None else "**yes**" if met else "**no**")
            + " |"
        )
    short = [
        f"{key} copied {r['copied']} of {r['files']}"
        for key, runs in data.get("initial", {}).items()
        for r in runs
        if r.get("copied") != r["files"]
    ]
    lines += [
        "",
        "Initial sync: wall from starting the system (or rsync) to its own signal that the "
        "pass ended (sentinel: `backup_state.last_full` set; lsyncd: `Startup of ... "
        "finished` in its log); the files on the replica are counted at that moment: "
        + ("all there." if not short else "**short: " + "; ".join(short) + "**")
        + " Reconcile: sentinel's time is `Replicator.reconcile()` in an already started "
        "process, median of 3, interleaved with `rsync -a` of the same tree to the same "
        "replica on the same filesystem.",
    ]
    lat = data.get("latency", {})
    if lat:
        lines += [
            "",
            "Per latency workload (summed over repeats): files written, files never on the "
            "replica, files there but their event never seen, in-place writes under a final "
            "name (IN_CLOSE_WRITE on the replica: a partial copy was visible), max latency.",
            "",
            "| workload | system | files | never replicated | unseen | in-place writes | max |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, runs in lat.items():
            kind, wl = key.split("|")
            lines.append(
                f"| {wl} | {kind} | {sum(values(runs, 'files')):.0f} | "
                f"{sum(values(runs, 'missing')):.0f} | {sum(values(runs, 'unseen')):.0f} | "
                f"{sum(values(runs, 'in_place')):.0f} | {cell(values(runs, 'max'), _ms)} |"
            )
    floor = data.get("floor")
    if floor:
        lines += [
            "",
            "Floor: one `rsync -a` of one 8 KiB file, warm transport, 20 runs, from the spawn:",
            "",
            "| | rename seen (median) | rsync exited (median) | rename seen (min) | "
            "rsync exited (min) |",
            "|---|---|---|---|---|",
        ]
        for kind in ("local", "ssh"):
            lines.append(
                f"| {kind} | {_ms(floor[f'{kind}_seen_median'])} | "
                f"{_ms(floor[f'{kind}_exit_median'])} | {_ms(floor[f'{kind}_seen_min'])} | "
                f"{_ms(floor[f'{kind}_exit_min'])} |"
            )
    out = data.get("outage")
    if out:
        lines += [
            "",
            f"Catch-up after a {out['outage_s']:.0f} s ssh target outage ({out['files']} files "
            f"written meanwhile): {out['catch_up_s']:.1f} s, CPU {out['cpu_catch_up']:.2f} s, "
            f"files missing {out['missing']}.",
        ]
    lines += [
        "",
        "<details><summary>Raw numbers</summary>",
        "",
        "```json",
        json.dumps(data, indent=1, default=str),
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    # short: ssh ControlPath sockets must fit in 108 bytes
    d = Path(tempfile.mkdtemp(prefix="sb", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def parse_only(text: str) -> set[str]:
    parts = {p.strip() for p in text.split(",") if p.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}"
        )
    return parts


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 5 s workloads, a 5,000-file tree in 50 and 500 dirs, 20 appends, 1 repeat",
    )
    ap.add_argument(
        "--only",
        type=parse_only,
        default=set(DEFAULT_PARTS),
        help=f"comma-separated parts of {','.join(PARTS)} (default: all but outage)",
    )
    ap.add_argument("--repeats", type=int, help="interleaved repeats (default 2, quick 1)")
    ap.add_argument(
        "--targets",
        default="local,ssh",
        help="latency part: comma-separated targets of local,ssh (default both)",
    )
    ap.add_argument("--fs", choices=KINDS, default="loop", help="filesystem per system")
    ap.add_argument("--fs-gb", type=int, default=8, help="size of each fresh filesystem")
    ap.add_argument("--tree-files", type=int, help="files in the initial-sync tree (100000)")
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    targets = [t for t in ("local", "ssh") if t in args.targets.split(",")]
    plan = Plan(fs=args.fs, fs_gb=args.fs_gb)
    if args.quick:
        plan = Plan(
            low_s=5,
            high_s=5,
            ssh_s=5,
            tree_files=5_000,
            dir_shapes=(50, 500),
            append_steps=20,
            repeats=1,
            fs=args.fs,
            fs_gb=args.fs_gb,
            settle=1.0,
            outage=10,
        )
    if args.tree_files:
        scale = args.tree_files / plan.tree_files
        plan.dir_shapes = tuple(max(1, round(d * scale)) for d in plan.dir_shapes)
        plan.tree_files = args.tree_files
    if args.repeats:
        plan.repeats = args.repeats
    if args.fs != "none" and os.geteuid() != 0:
        raise SystemExit("--fs loop/tmpfs mounts filesystems: run as root, or use --fs none")
    parts: set[str] = args.only
    began = time.monotonic()
    data: dict[str, Any] = {
        "machine": machine(plan.fs, plan.fs_gb),
        "started": time.strftime("%Y-%m-%d %H:%M %Z"),
        "load_start": loadavg(),
        "plan": plan.__dict__,
    }
    with workdir() as work:
        n = 0

        def fresh(name: str) -> contextlib.AbstractContextManager[Scratch]:
            nonlocal n
            n += 1
            return scratch(work, f"{name}{n}", plan.fs, plan.fs_gb)

        sshd = Sshd(work / "sshd")
        sshd.start()
        try:
            systems = [SENTINEL, LSYNCD]
            for rep in range(plan.repeats):
                if "latency" in parts:
                    for target in targets:
                        kinds = [*systems, WIDE] + ([STREAM] if target == "ssh" else [])
                        for kind in order(kinds, rep):
                            print(f"[{rep}] latency {kind} -> {target}", flush=True)
                            with fresh("lat") as fs:
                                try:
                                    res = run_latency(
                                        kind,
                                        target,
                                        fs.path,
                                        sshd if target == "ssh" else None,
                                        plan,
                                    )
                                except RuntimeError as exc:
                                    print(f"  failed: {exc}", flush=True)
                                    continue
                            for wl, stats in res.items():
                                data.setdefault("latency", {}).setdefault(
                                    f"{kind}|{wl}", []
                                ).append(stats)
                if "initial" in parts or "rss" in parts:
                    rss_only = "initial" not in parts
                    shapes = plan.dir_shapes if not rss_only else (max(plan.dir_shapes),)
                    kinds = systems + ([RSYNC] if not rss_only else [])
                    for dirs in shapes:
                        for kind in order(kinds, rep):
                            print(f"[{rep}] initial {kind}, {dirs} dirs", flush=True)
                            with fresh("init") as fs:
                                try:
                                    res = run_initial(
                                        kind,
                                        fs.path,
                                        plan.tree_files,
                                        dirs,
                                        plan,
                                        reconcile=dirs == min(plan.dir_shapes),
                                        rss_only=rss_only,
                                    )
                                except RuntimeError as exc:
                                    print(f"  failed: {exc}", flush=True)
                                    continue
                            data.setdefault("initial", {}).setdefault(f"{kind}|{dirs}", []).append(
                                res
                            )
                if "append" in parts:
                    for kind in order(systems, rep):
                        print(f"[{rep}] append {kind}", flush=True)
                        with fresh("app") as fs:
                            try:
                                res = run_append(kind, fs, plan)
                            except RuntimeError as exc:
                                print(f"  failed: {exc}", flush=True)
                                continue
                        data.setdefault("append", {}).setdefault(kind, []).append(res)
            if "floor" in parts:
                with fresh("floor") as fs:
                    data["floor"] = rsync_floor(fs.path, sshd)
                print("floor", data["floor"], flush=True)
            if "outage" in parts:
                with fresh("outage") as fs:
                    data["outage"] = run_outage(fs.path, sshd, plan)
                print("outage", data["outage"], flush=True)
        finally:
            sshd.stop()
            drop_bench_account()
    data["took"] = time.monotonic() - began
    data["load_end"] = loadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["python", "bench/replication.py", *argv]
    args.output.write_text(report(data, cmd, plan))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main(sys.argv[1:])
