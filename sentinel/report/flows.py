"""Every network flow the configuration makes: who talks to whom, on which port, with which
protocol, whether it is encrypted and how it authenticates (the security pack's first
table, and what findings.py judges).

Read from the config models and from what the code that uses them does (sentinel/sources.py,
backup/transport/, alerts/channels.py, sentinel/web/); nothing is connected to. No field
ever holds a secret: channels are named by their masked URL, and a login is named by its
kind and user name only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from backup.target import TargetError
from backup.transport import LocalTarget, RsyncdTarget, SshTarget, parse_target
from common.kinds import SAFETY_KINDS
from common.redaction import is_real_host
from sentinel.advice.loopback import is_loopback
from sentinel.config import Config
from sentinel.config.replication import ReplicationConfig
from sentinel.config.sensors import MQTT_FORMATS
from sentinel.report.context import ReportContext

Direction = Literal["out", "in", "local"]


@dataclass(frozen=True, slots=True)
class Flow:
    part: str  # "mqtt", "alert", "replication", "keeper", "web", "nut", ...
    name: str  # the config's name for it (a replication's name, a channel's masked URL)
    source: str  # "this host" or the peer that connects in
    destination: str  # host name or address (never a secret)
    port: int | None  # None: a local path or device, no network
    protocol: str  # "MQTT over TCP", "HTTPS", "rsync over ssh", ...
    encrypted: bool | None  # None: not a network flow (a local path)
    encryption: str  # "TLS", "ssh", "none", ...
    auth: str  # how it authenticates, never the secret itself
    direction: Direction = "out"
    config_key: str = ""  # where in sentinel.toml it is set: "[mqtt]", "replication[0].target"
    # what the restriction on the far end is, or why a cell says what it says (ctx.lang)
    note: str = ""
    # the kind of transport, for findings.py: "rsyncd", "ssh", "ssh-daemon", "local", "http",
    # "mail", "mqtt", ... (not shown)
    kind: str = ""


def flows(ctx: ReportContext) -> list[Flow]:
    """The flows of `ctx.config`, texts in `ctx.lang`."""
    c = ctx.config
    out: list[Flow] = []
    out += _mqtt(ctx, c)
    out += _alerts(ctx, c)
    for i, rc in enumerate(c.replication):
        out += _replication(ctx, i, rc)
    out += _keeper_rooms(ctx, c)
    out += _web(ctx, c)
    out += _nut(ctx, c)
    out += _devices(ctx, c)
    return out


def here(ctx: ReportContext) -> str:
    return ctx.t("이 호스트", "this host")


# -- MQTT ------------------------------------------------------------------------------------


def _mqtt(ctx: ReportContext, c: Config) -> list[Flow]:
    m = c.mqtt
    if m is None:
        return []
    t = ctx.t
    if m.username is not None:
        auth = t(f"사용자 이름/비밀번호 ({m.username})", f"username/password ({m.username})")
    else:
        auth = t("없음 (익명)", "none (anonymous)")
    if m.cert_file is not None:
        auth += t(" + 클라이언트 인증서", " + client certificate")
    if m.tls:
        ca = str(m.ca_file) if m.ca_file else t("시스템 CA", "system CAs")
        encryption = f"TLS (CA: {ca})"
    else:
        encryption = t("없음", "none")
    protocol = "MQTT over TLS" if m.tls else "MQTT over TCP"

    def flow(name: str, note: str, key: str = "[mqtt]") -> Flow:
        return Flow(
            "mqtt", name, here(ctx), m.host, m.port, protocol, m.tls, encryption, auth,
            config_key=key, note=note, kind="mqtt",
        )  # fmt: skip

    out = [flow("sentinel", t("센서 구독, 상태 발행", "sensor subscriptions, state published"))]
    bound = [s for s in c.sensors if s.format in MQTT_FORMATS]
    safety = [s for s in bound if s.kind in SAFETY_KINDS]
    # sentinel/sources.py: leak and smoke get a connection of their own when other sensors
    # share the broker, so a flooding telemetry device cannot delay a leak
    if safety and len(safety) < len(bound):
        out.append(
            flow(
                "sentinel-safety",
                t("누수·연기 센서 전용 두 번째 연결", "second connection, leak and smoke only"),
            )
        )
    for i, o in enumerate(c.outputs):
        if o.kind == "mqtt":
            out.append(
                flow(
                    f"output {o.name}",
                    t(
                        f"경광등/사이렌 명령 발행, 별도 연결: {o.topic}",
                        f"siren/beacon command, a connection of its own: {o.topic}",
                    ),
                    key=f"outputs[{i}]",
                )
            )
    return out


# -- alert channels ----------------------------------------------------------------------------

# scheme -> (protocol, default host when the URL's host is a token, default port, encrypted)
_API: dict[str, tuple[str, str, int, bool]] = {
    "tgram": ("HTTPS (Telegram Bot API)", "api.telegram.org", 443, True),
    "kakao": ("HTTPS (Kakao API)", "kapi.kakao.com", 443, True),
    "kakaotalk": ("HTTPS (Kakao API)", "kapi.kakao.com", 443, True),
    "discord": ("HTTPS (Discord)", "discord.com", 443, True),
    "slack": ("HTTPS (Slack)", "hooks.slack.com", 443, True),
    "msteams": ("HTTPS (Teams)", "outlook.office.com", 443, True),
    "line": ("HTTPS (LINE)", "api.line.me", 443, True),
}
_HTTP = {"json": "JSON", "jsons": "JSON", "form": "form", "forms": "form", "xml": "XML"}
_HTTP |= {"xmls": "XML"}
_SMS_AGENT = {"smsagentmysql": ("MySQL/MariaDB", 3306), "smsagentpg": ("PostgreSQL", 5432)}
_LOCAL = {"console", "sentinelfile"}


def _alerts(ctx: ReportContext, c: Config) -> list[Flow]:
    path = c.alerts.apprise_config
    if path is None:
        return []
    t = ctx.t
    from alerts.channels import ChannelConfigError, load_channels
    from alerts.plugins import PluginDirError, load_plugin_dir

    try:
        if c.alerts.plugin_dir is not None:
            load_plugin_dir(c.alerts.plugin_dir)
        channels = load_channels(Path(path))
    except (ChannelConfigError, PluginDirError, OSError) as exc:
        # the error texts of channels.py are masked already; the report still renders
        return [
            Flow(
                "alert", str(path), here(ctx), "-", None, "Apprise", None, "-",
                "-", direction="local", config_key="[alerts] apprise_config",
                note=t("Apprise 설정을 읽을 수 없음: ", "Apprise config not readable: ")
                + _plain(str(exc)), kind="unreadable",
            )
        ]  # fmt: skip
    out = []
    for ch in channels:
        service = next(iter(ch.apprise))
        out.append(_channel(ctx, ch.display, ch.schema, sorted(ch.tags), service, ch.index))
    return out


def _plain(text: str) -> str:
    return " ".join(text.replace("|", "/").split())


def _channel(
    ctx: ReportContext, display: str, scheme: str, tags: list[str], service: Any, index: int
) -> Flow:
    t = ctx.t
    key = f"[alerts] apprise_config, urls[{index}]"
    note = (t("태그: ", "tags: ") + ", ".join(tags)) if tags else ""
    host = str(getattr(service, "host", "") or "")
    port = getattr(service, "port", None)
    user = getattr(service, "user", None)
    password = getattr(service, "password", None)
    # the user field is a key in some plugins (pover://USERKEY@token, sendgrid://APIKEY:from):
    # a name is printed only where the masked form shows it too
    who = (
        f" ({user})"
        if user and scheme not in _TOKEN_USER and str(user) in urlsplit(display).netloc
        else ""
    )

    def flow(dest: str, port: int | None, protocol: str, enc: bool | None, how: str, auth: str,
             kind: str, direction: Direction = "out") -> Flow:  # fmt: skip
        return Flow(
            "alert", display, here(ctx), dest, port, protocol, enc, how, auth, direction,
            key, note, kind,
        )  # fmt: skip

    none = t("없음", "none")
    if scheme in _LOCAL:
        return flow("-", None, scheme, None, "-", "-", "local", "local")
    if scheme == "modem":
        # its display keeps the recipients' phone numbers: personal data stays off paper
        dev = str(getattr(service, "device", "") or "-")
        display = f"modem://{dev}"
        return flow(
            dev, None, t("SMS (USB 모뎀, 직렬 장치)", "SMS (USB modem, serial device)"), None,
            t("해당 없음 (망 아님)", "n/a (no network)"),
            t("SIM PIN (URL 안, 가려짐)", "SIM PIN (in the URL, masked)")
            if password or getattr(service, "pin", None) else none, "local", "local",
        )  # fmt: skip
    if scheme in ("mailto", "mailtos"):
        smtp = str(getattr(service, "smtp_host", "") or host)
        mode = str(getattr(service, "secure_mode", "") or "")
        enc = scheme == "mailtos" and mode != "insecure"
        how = {"starttls": "STARTTLS", "ssl": "TLS (SMTPS)"}.get(mode, none) if enc else none
        auth = t(f"SMTP 로그인{who}", f"SMTP login{who}") if user else none
        return flow(smtp, port or (587 if enc else 25), "SMTP", enc, how, auth, "mail")
    if scheme in _SMS_AGENT:
        db, default = _SMS_AGENT[scheme]
        if scheme == "smsagentpg":
            # psycopg's default sslmode=prefer: TLS when the server offers it, else clear
            enc, how = False, t("서버가 제공하면 TLS (필수 아님)", "TLS if offered (not required)")
        else:
            enc, how = False, none  # pymysql is called without ssl= (alerts/sms_agent.py)
        auth = t(f"DB 사용자/비밀번호{who}", f"database user/password{who}")
        return flow(host, port or default, f"{db} (SMS agent)", enc, how, auth, "database")
    from alerts import gateways

    if scheme in gateways.SCHEMES:
        base = urlsplit(str(getattr(service, "base", "") or ""))
        secure = base.scheme == "https"
        auth = t("API 키/비밀 (URL 안, 가려짐)", "API key/secret (in the URL, masked)")
        dest = base.hostname or "-"
        return flow(
            dest, base.port or (443 if secure else 80), "HTTPS" if secure else "HTTP", secure,
            "TLS" if secure else none, auth, "http",
        )  # fmt: skip
    if scheme in _API and not is_real_host(host):
        protocol, dest, default, enc = _API[scheme]
        auth = t("토큰 (URL 안, 가려짐)", "token (in the URL, masked)")
        return flow(dest, default, protocol, enc, "TLS", auth, "http")
    api = getattr(service, "notify_url", None)
    if isinstance(api, str) and api.startswith(("https://", "http://")) and scheme not in _HTTP:
        # a service at a fixed address (Pushover, SendGrid, Pushbullet): the URL's host
        # field holds a token or a sender domain, not where the message goes
        base = urlsplit(api)
        secure = base.scheme == "https"
        return flow(
            base.hostname or "-", base.port or (443 if secure else 80),
            f"{scheme} ({'HTTPS' if secure else 'HTTP'})", secure, "TLS" if secure else none,
            t("토큰/키 (URL 안, 가려짐)", "token/key (in the URL, masked)"), "http",
        )  # fmt: skip
    secure = bool(getattr(service, "secure", False)) or scheme.endswith("s")
    if scheme in _HTTP:
        protocol = ("HTTPS" if secure else "HTTP") + f" ({_HTTP[scheme]} POST)"
    else:
        protocol = f"{scheme} ({'HTTPS' if secure else 'HTTP'})"
    query = urlsplit(display).query
    if user or password:
        auth = t(f"사용자/비밀번호{who}", f"user/password{who}")
    elif "+" in "".join(q[:1] for q in query.split("&") if q):
        auth = t("HTTP 헤더 (가려짐)", "HTTP header (masked)")
    elif scheme in _HTTP:
        # a gateway may take a key in its path; the path is masked either way
        auth = t("URL 경로의 토큰 (있다면 가려짐)", "token in the URL path, if any (masked)")
    else:
        auth = t("토큰 (URL 안, 가려짐)", "token (in the URL, masked)")
    dest = host if is_real_host(host) else "-"
    return flow(
        dest, port or (443 if secure else 80), protocol, secure, "TLS" if secure else none,
        auth, "http",
    )  # fmt: skip


# where the user field of a URL is a key, not a login name
_TOKEN_USER = {"aligo", "nhnsms", "toastsms", "solapi", "coolsms"}


# -- replication and the keeper ----------------------------------------------------------------


def _replication(ctx: ReportContext, i: int, rc: ReplicationConfig) -> list[Flow]:
    t = ctx.t
    what = t("문서 저장소 복제", "document store replica")
    if rc.kind == "archive-log":
        what = t("DB 아카이브 로그", "database archive logs")
    if rc.keeper is not None:
        what += t(", 키퍼 하트비트", ", keeper heartbeat")
    out = [_target(ctx, "replication", rc.name, rc.target, rc, f"replication[{i}].target", what)]
    if rc.keeper is not None:
        k = rc.keeper
        out.append(
            _target(
                ctx, "keeper", f"{rc.name} receipt", k.receipt, rc,
                f"replication[{i}].keeper.receipt",
                t("키퍼 영수증 읽기 (데이터 안전 시각)",
                  'keeper receipt read back ("data safe as of")'),
            )
        )  # fmt: skip
        if k.history is not None:
            out.append(
                _target(
                    ctx, "keeper", f"{rc.name} history", k.history, rc,
                    f"replication[{i}].keeper.history",
                    t("복구 훈련: 키퍼 스냅숏 읽기 (읽기 전용 키)",
                      "restore drill: keeper snapshots read (read-only drill key)"),
                    identity=k.history_identity_file,
                )
            )  # fmt: skip
    return out


def _target(
    ctx: ReportContext,
    part: str,
    name: str,
    address: str,
    rc: ReplicationConfig,
    key: str,
    what: str,
    identity: Path | None = None,
) -> Flow:
    t = ctx.t
    try:
        target = parse_target(address, password_file=rc.password_file, ssh_port=rc.ssh_port)
    except TargetError as exc:
        return Flow(
            part, name, here(ctx), "-", None, "-", None, "-", "-", config_key=key,
            note=str(exc), kind="unreadable",
        )  # fmt: skip
    if isinstance(target, LocalTarget):
        return Flow(
            part, name, here(ctx), target.url, None, t("로컬 경로", "local path"), None,
            t("해당 없음 (망 아님)", "n/a (no network)"), t("파일 권한", "file permissions"),
            "local", key, what, "local",
        )  # fmt: skip
    if isinstance(target, RsyncdTarget):
        parts = urlsplit(target.url)
        user = parts.username
        port = parts.port or 873
        if rc.password_file is not None:
            auth = t(
                f"rsync 데몬 사용자/비밀번호 ({user}, 비밀번호 파일 {rc.password_file})",
                f"rsync daemon user/password ({user}, password file {rc.password_file})",
            )
        else:
            auth = t("없음 (익명 모듈)", "none (anonymous module)")
        # docs/transport.md: a loopback rsync:// is how a config names the local stunnel
        # client that carries the records the rest of the way inside TLS
        if is_loopback(target.host):
            return Flow(
                part, name, here(ctx), target.host, port,
                t("rsync 데몬, 로컬 stunnel 경유", "rsync daemon via the local stunnel client"),
                True, t("TLS (stunnel, docs/transport.md)", "TLS (stunnel, docs/transport.md)"),
                auth, "out", key,
                what
                + t("; stunnel의 connect= 가 실제 목적지", "; stunnel's connect= is the real peer"),
                "rsyncd-tls",
            )  # fmt: skip
        return Flow(
            part, name, here(ctx), target.host, port,
            t("rsync 데몬 (평문)", "rsync daemon (clear)"), False, t("없음", "none"), auth,
            "out", key, what, "rsyncd",
        )  # fmt: skip
    assert isinstance(target, SshTarget)
    login, _, _ = target.url.partition(":")
    user, _, host = login.rpartition("@")
    key_file = identity or rc.identity_file
    auth = t("ssh 키", "ssh key") + (
        f" {key_file}" if key_file else t(" (기본 키)", " (default key)")
    )
    if user:
        auth += f", {user}"
    checking = {
        "yes": t("호스트 키 확인", "host key checked"),
        "accept-new": t("처음 본 호스트 키 신뢰", "first host key trusted"),
        "no": t("호스트 키 확인 안 함", "host key NOT checked"),
    }[rc.strict_host_key_checking]
    if target.daemon_over_ssh:
        protocol = t("rsync 데몬 over ssh", "rsync daemon over ssh")
        kind = "ssh-daemon"
        note = t(
            "원격 강제 명령: rsync --server --daemon (systemd/keeper-authorized_keys.example)",
            "remote forced command: rsync --server --daemon "
            "(systemd/keeper-authorized_keys.example)",
        )
    else:
        protocol = "rsync over ssh"
        kind = "ssh"
        note = t(
            "원격 강제 명령: rrsync -wo DIR (systemd/authorized_keys.example)",
            "remote forced command: rrsync -wo DIR (systemd/authorized_keys.example)",
        )
    return Flow(
        part, name, here(ctx), host, rc.ssh_port or 22, protocol, True, f"ssh ({checking})",
        auth, "out", key, f"{what}; {note}", kind,
    )  # fmt: skip


def _keeper_rooms(ctx: ReportContext, c: Config) -> list[Flow]:
    """A keeper host: what comes in from each room (docs/keeper.md): the room's writes into
    its landing module and its receipt reads, over ssh with a forced command, and the drill's
    reads of the history module with the separate drill key."""
    if c.keeper is None:
        return []
    t = ctx.t
    out = []
    for i, room in enumerate(c.keeper.rooms):
        src = t(f"방 {room.where}", f"room {room.where}")
        key = f"keeper.rooms[{i}]"
        write_key = t("방의 쓰기 키", "the room's write key")
        doc = "systemd/keeper-authorized_keys.example"
        flows_in: list[tuple[str, str, str, str]] = [
            (
                f"{room.name} landing",
                t(f"복제본 쓰기 → {room.landing}", f"replica written into {room.landing}"),
                write_key,
                doc,
            ),
            (
                f"{room.name}-receipt",
                t(f"영수증 읽기 ← {c.keeper.receipt_dir}",
                  f"receipt read from {c.keeper.receipt_dir}"),
                write_key,
                doc,
            ),
            (
                f"{room.name}-history",
                t(
                    f"복구 훈련: 스냅숏 읽기 ← {c.keeper.snapshot_dir} (읽기 전용)",
                    f"restore drill: snapshots read from {c.keeper.snapshot_dir} (read-only)",
                ),
                t("방의 훈련 키 (읽기 전용)", "the room's drill key (read-only)"),
                "systemd/keeper-history-authorized_keys.example",
            ),
        ]  # fmt: skip
        # docs/keeper.md: the rooms come in over ssh; a site may use the rsync daemon inside
        # stunnel instead (docs/transport.md), which only the host's stunnel config shows
        for name, what, who, how in flows_in:
            out.append(
                Flow(
                    "keeper", name, src, here(ctx), 22,
                    t("rsync 데몬 over ssh", "rsync daemon over ssh"), True, "ssh",
                    who + t(", 강제 명령 (", ", forced command (") + how + ")",
                    "in", key, what, "ssh-daemon",
                )
            )  # fmt: skip
    return out


# -- the dashboard -----------------------------------------------------------------------------


def _web(ctx: ReportContext, c: Config) -> list[Flow]:
    w = c.web
    if w is None:
        return []
    t = ctx.t
    users = str(w.users_file or Path(c.daemon.state_dir) / "web-users")
    proto = "HTTPS" if w.tls else "HTTP"
    enc = "TLS" if w.tls else t("없음", "none")
    if w.view == "open":
        auth = t(
            f"보기: 없음; 조치: 로그인 ({users}), 세션 쿠키",
            f"viewing: none; acting: login ({users}), session cookie",
        )
    else:
        auth = t(f"로그인 ({users}), 세션 쿠키", f"login ({users}), session cookie")
    who = t("브라우저", "browsers")
    if w.trusted_proxies:
        who += t(" (역방향 프록시: ", " (reverse proxy: ") + ", ".join(w.trusted_proxies) + ")"
    out = [
        Flow(
            "web", t("대시보드", "dashboard"), who, w.listen, w.port, proto, w.tls, enc, auth,
            "in", "[web] listen, port", kind="web",
        )
    ]  # fmt: skip
    if w.metrics:
        out.append(
            Flow(
                "web", "/metrics", t("Prometheus (수집기)", "Prometheus (scraper)"), w.listen,
                w.port, proto, w.tls, enc, t("없음 (로그인 없음)", "none (no login)"), "in",
                "[web] metrics",
                t("센서 값 공개; docs/web.md: 프록시에서 수집기만 허용",
                  "shows sensor values; docs/web.md: let only the scraper reach it"),
                "metrics",
            )
        )  # fmt: skip
    return out


# -- UPS and local devices ---------------------------------------------------------------------


def _nut(ctx: ReportContext, c: Config) -> list[Flow]:
    t = ctx.t
    out = []
    for i, n in enumerate(c.nut):
        auth = (
            t(f"사용자 이름/비밀번호 ({n.username})", f"username/password ({n.username})")
            if n.username
            else t("없음 (upsd ACL)", "none (upsd ACL)")
        )
        out.append(
            Flow(
                "nut", n.name, here(ctx), n.host, n.port, "NUT (upsd) over TCP", False,
                t("없음", "none"), auth, "out", f"nut[{i}]", kind="nut",
            )
        )  # fmt: skip
    return out


def _devices(ctx: ReportContext, c: Config) -> list[Flow]:
    t = ctx.t
    out = []
    for i, p in enumerate(c.serial):
        out.append(
            _device(
                ctx,
                "serial",
                p.name,
                p.url,
                t("센서 (텍스트 줄)", "sensor (text lines)"),
                f"serial[{i}]",
            )
        )
    ports = {b.name: b.port for b in c.modbus}
    for i, b in enumerate(c.modbus):
        out.append(_device(ctx, "modbus", b.name, b.port, "Modbus RTU (RS-485)", f"modbus[{i}]"))
    for i, o in enumerate(c.outputs):
        if o.kind == "modbus" and o.bus is not None:
            what = t(
                f"경광등/사이렌 코일 {o.coil}, 장치 {o.device}",
                f"siren/beacon coil {o.coil}, device {o.device}",
            )
            out.append(
                _device(ctx, "output", o.name, ports[o.bus], f"Modbus RTU: {what}", f"outputs[{i}]")
            )
    return out


def _device(ctx: ReportContext, part: str, name: str, url: str, what: str, key: str) -> Flow:
    t = ctx.t
    # pyserial URLs (socket://, rfc2217://) reach a serial-over-IP converter: a network flow,
    # unencrypted and without a login
    if "://" in url:
        parts = urlsplit(url)
        return Flow(
            part, name, here(ctx), parts.hostname or "-", parts.port,
            f"{what}, {parts.scheme}:// (serial over TCP)", False, t("없음", "none"),
            t("없음", "none"), "out", key, kind="serial-tcp",
        )  # fmt: skip
    return Flow(
        part, name, here(ctx), url, None, what, None, t("해당 없음 (망 아님)", "n/a (no network)"),
        t("장치 파일 권한", "device file permissions"), "local", key, kind="local",
    )  # fmt: skip
