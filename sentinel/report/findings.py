"""The settings that weaken the security posture, each with its fix (the pack's last
section): a plain rsync daemon over the network, a broker without login, a dashboard bound
beyond loopback without TLS, ...

Judged from the flows (flows.py) and the config alone. File owners and modes are checked
live by the files section of the pack, not here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sentinel.advice.loopback import is_loopback
from sentinel.report.context import ReportContext
from sentinel.report.flows import Flow

Severity = Literal["high", "medium", "low"]
_RANK = {"high": 0, "medium": 1, "low": 2}


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Literal["high", "medium", "low"]
    config_key: str  # where to change it: "[mqtt]", "replication[0].target", "[web] bind"
    problem: str  # in ctx.lang
    fix: str  # in ctx.lang


def findings(ctx: ReportContext, flows: list[Flow]) -> list[Finding]:
    """What weakens the posture of `ctx.config`, worst first."""
    found: list[Finding] = []
    for f in flows:
        found += _of_flow(ctx, f)
    found += _of_config(ctx)
    # stable: within a severity, in the order the flows and the config name them
    return sorted(found, key=lambda x: _RANK[x.severity])


def _remote(f: Flow) -> bool:
    return f.port is not None and not is_loopback(f.destination)


def _of_flow(ctx: ReportContext, f: Flow) -> list[Finding]:
    t = ctx.t
    key = f.config_key
    if f.kind == "unreadable":
        return [
            Finding(
                "medium", key,
                t(f"설정을 읽을 수 없어 이 흐름을 판단할 수 없음: {f.note}",
                  f"cannot be read, so this flow is not judged: {f.note}"),
                t("`sentinel check-config`로 원인을 고치십시오.",
                  "Fix it (`sentinel check-config`)."),
            )
        ]  # fmt: skip
    if f.kind == "rsyncd" and _remote(f):
        out = [
            Finding(
                "high", key,
                t(f"{f.destination}의 평문 rsync 데몬: 공문서가 암호화 없이 망을 건너며 "
                  "경로상 누구나 읽고 바꿀 수 있고, 로그인도 가로채 오프라인으로 추측할 수 있음.",
                  f"plain rsync daemon on {f.destination}: the records cross the network "
                  "unencrypted, readable and alterable on the path, and the login can be "
                  "captured and guessed offline."),
                t("ssh 대상(user@host: + rrsync, 또는 user@host::module)을 쓰거나, stunnel로 "
                  "감싸고 대상을 rsync://user@127.0.0.1:PORT/module 로 (docs/transport.md).",
                  "Use an ssh target (user@host: with rrsync, or user@host::module), or wrap "
                  "the daemon in stunnel and target rsync://user@127.0.0.1:PORT/module "
                  "(docs/transport.md)."),
            )
        ]  # fmt: skip
        if "password" not in f.auth and "비밀번호" not in f.auth:
            out.append(_anonymous_module(ctx, key, "high"))
        return out
    if f.kind == "rsyncd-tls" and "password" not in f.auth and "비밀번호" not in f.auth:
        return [_anonymous_module(ctx, key, "medium")]
    if f.kind in ("ssh", "ssh-daemon") and f.direction == "out":
        return _ssh(ctx, f)
    if f.kind == "mqtt" and f.name == "sentinel" and _remote(f):
        return _broker(ctx, f)
    if f.kind == "web" and _remote(f) and not f.encrypted:
        return [
            Finding(
                "high", "[web] listen",
                t(f"대시보드가 {f.destination}:{f.port}에 TLS 없이 열려 있음: 로그인 비밀번호와 "
                  "세션 쿠키가 평문으로 망을 건넘.",
                  f"the dashboard listens on {f.destination}:{f.port} without TLS: login "
                  "passwords and session cookies cross the network in the clear."),
                t('tls_cert/tls_key를 설정하거나, listen = "127.0.0.1"로 두고 HTTPS 역방향 '
                  "프록시로 공개하십시오 (docs/web.md).",
                  'Set tls_cert and tls_key, or keep listen = "127.0.0.1" and publish it '
                  "through an HTTPS reverse proxy (docs/web.md)."),
            )
        ]  # fmt: skip
    if f.kind == "metrics" and _remote(f):
        return [
            Finding(
                "low", "[web] metrics",
                t("/metrics가 로그인 없이 망에 열려 있음: 센서 값과 경보 상태를 누구나 읽음.",
                  "/metrics is open to the network without a login: anyone reads sensor "
                  "values and alarm states."),
                t("metrics = false, 또는 프록시에서 Prometheus만 허용 (docs/web.md).",
                  "Set metrics = false, or let only Prometheus reach it (docs/web.md)."),
            )
        ]  # fmt: skip
    if f.kind == "http" and _remote(f) and not f.encrypted:
        return [
            Finding(
                "medium", key,
                t(f"경보 채널 {f.name}이(가) 암호화 없는 HTTP로 {f.destination}에 보냄: 경보 "
                  "내용과 URL 속 토큰이 평문으로 망을 건넘.",
                  f"alert channel {f.name} sends over plain HTTP to {f.destination}: the "
                  "page and any token in the URL cross the network in the clear."),
                t("https 형식(jsons://, forms://, ?url=https://...)으로 바꾸십시오.",
                  "Use the https form (jsons://, forms://, ?url=https://...)."),
            )
        ]  # fmt: skip
    if f.kind == "mail" and _remote(f) and not f.encrypted:
        login = "login" in f.auth or "로그인" in f.auth
        return [
            Finding(
                "high" if login else "medium", key,
                t(f"메일 채널 {f.name}이(가) TLS 없이 {f.destination}에 보냄"
                  + (": SMTP 비밀번호도 평문." if login else "."),
                  f"mail channel {f.name} sends to {f.destination} without TLS"
                  + (": the SMTP password too." if login else ".")),
                t("mailtos:// (STARTTLS 또는 SMTPS)를 쓰십시오.",
                  "Use mailtos:// (STARTTLS or SMTPS)."),
            )
        ]  # fmt: skip
    if f.kind == "database" and _remote(f) and not f.encrypted:
        return [
            Finding(
                "medium", key,
                t(f"SMS 에이전트 DB({f.destination}:{f.port}) 연결이 TLS를 요구하지 않음: DB "
                  "비밀번호와 받는 사람 번호, 경보 내용이 평문일 수 있음.",
                  f"the SMS agent database ({f.destination}:{f.port}) is reached without "
                  "required TLS: the database password, phone numbers and pages may cross "
                  "in the clear."),
                t("에이전트 DB를 이 호스트나 보호된 망에 두거나, TLS 터널(stunnel, WireGuard)을 "
                  "쓰십시오.",
                  "Keep the agent database on this host or a protected segment, or reach it "
                  "through a TLS tunnel (stunnel, WireGuard)."),
            )
        ]  # fmt: skip
    if f.kind == "nut" and _remote(f):
        login = "password" in f.auth or "비밀번호" in f.auth
        return [
            Finding(
                "medium" if login else "low", key,
                t(f"원격 upsd({f.destination})에 평문 연결"
                  + (": NUT 비밀번호가 평문으로 망을 건넘." if login
                     else ": 경로상에서 UPS 상태를 위조할 수 있음."),
                  f"plain connection to the remote upsd ({f.destination})"
                  + (": the NUT password crosses the network in the clear." if login
                     else ": the UPS state can be forged on the path.")),
                t("upsd를 이 호스트에서 읽거나, 보호된 망/터널을 쓰십시오 (docs/ups.md).",
                  "Read upsd on this host, or over a protected segment or tunnel "
                  "(docs/ups.md)."),
            )
        ]  # fmt: skip
    if f.kind == "serial-tcp" and _remote(f):
        return [
            Finding(
                "medium", key,
                t(f"직렬-IP 변환기({f.destination})를 암호화·인증 없이 읽음: 센서 값을 경로상에서 "
                  "위조할 수 있음.",
                  f"the serial-over-IP converter ({f.destination}) is read without "
                  "encryption or login: readings can be forged on the path."),
                t("변환기를 분리된 망에 두거나 USB 직렬로 연결하십시오.",
                  "Keep the converter on a separate segment, or connect it over USB."),
            )
        ]  # fmt: skip
    return []


def _anonymous_module(ctx: ReportContext, key: str, severity: Severity) -> Finding:
    t = ctx.t
    return Finding(
        severity, key,
        t("rsync 데몬 모듈에 로그인이 없음 (password_file 없음): 닿는 누구나 복제본에 씀.",
          "the rsync daemon module has no login (no password_file): whoever reaches it "
          "writes the replica."),
        t("모듈에 auth users와 secrets file을, 여기에 password_file을 설정하십시오 "
          "(systemd/rsyncd.conf.example).",
          "Give the module auth users and a secrets file, and set password_file here "
          "(systemd/rsyncd.conf.example)."),
    )  # fmt: skip


def _ssh(ctx: ReportContext, f: Flow) -> list[Finding]:
    t = ctx.t
    out = []
    # the forced command lives in authorized_keys on the far host: not knowable from here
    doc = (
        "systemd/keeper-history-authorized_keys.example"
        if f.part == "keeper" and f.name.endswith(" history")
        else "systemd/keeper-authorized_keys.example"
        if f.kind == "ssh-daemon"
        else "systemd/authorized_keys.example"
    )
    out.append(
        Finding(
            "low", f.config_key,
            t(f"{f.destination}의 authorized_keys에 강제 명령(command=..., restrict)이 있는지 "
              "이 설정으로는 알 수 없음: 없으면 이 키로 원격 셸을 얻음.",
              f"whether authorized_keys on {f.destination} pins this key to a forced "
              "command (command=..., restrict) cannot be told from this config: without "
              "one the key gets a shell there."),
            t(f"{f.destination}의 authorized_keys를 확인하십시오 ({doc}).",
              f"Check authorized_keys on {f.destination} ({doc})."),
        )
    )  # fmt: skip
    return out


def _broker(ctx: ReportContext, f: Flow) -> list[Finding]:
    t = ctx.t
    anonymous = "anonymous" in f.auth or "익명" in f.auth
    cert = "certificate" in f.auth or "인증서" in f.auth
    doc = "docs/mqtt-broker.md"
    if anonymous and not f.encrypted:
        return [
            Finding(
                "high", "[mqtt]",
                t(f"브로커 {f.destination}에 TLS도 로그인도 없이 연결: 그 망의 누구나 센서 값을 "
                  "위조하거나 경보를 해제할 수 있음.",
                  f"the broker {f.destination} is reached with neither TLS nor a login: "
                  "anyone on that network can forge readings or clear an alarm."),
                t(f"클라이언트마다 계정과 ACL을 주고 tls = true로 ({doc}).",
                  f"Give each client an account and an ACL, and set tls = true ({doc})."),
            )
        ]  # fmt: skip
    if not f.encrypted:
        return [
            Finding(
                "high", "[mqtt] tls",
                t(f"브로커 {f.destination}에 TLS 없이 로그인: MQTT 비밀번호가 평문으로 망을 건넘.",
                  f"the broker {f.destination} is logged in to without TLS: the MQTT "
                  "password crosses the network in the clear."),
                t(f"tls = true (브로커의 TLS 리스너, {doc}).",
                  f"Set tls = true (the broker's TLS listener, {doc})."),
            )
        ]  # fmt: skip
    if anonymous and not cert:
        return [
            Finding(
                "medium", "[mqtt] username",
                t(f"브로커 {f.destination}가 익명 클라이언트를 받음: TLS는 내용을 감추지만 위조는 "
                  "막지 못함.",
                  f"the broker {f.destination} accepts anonymous clients: TLS hides the "
                  "traffic but does not stop forged readings."),
                t(f"sentinel과 각 게이트웨이에 계정과 ACL을 주십시오 ({doc}).",
                  f"Give sentinel and each gateway an account and an ACL ({doc})."),
            )
        ]  # fmt: skip
    return []


def _of_config(ctx: ReportContext) -> list[Finding]:
    t = ctx.t
    c = ctx.config
    out = []
    for i, rc in enumerate(c.replication):
        if rc.keeper is None:
            out.append(
                Finding(
                    "medium", f"replication[{i}].keeper",
                    t(f"복제 {rc.name!r}에 키퍼가 없음: 이 군청 호스트(또는 그 키)를 장악한 사람이 "
                      "복제본과 그 이력을 지울 수 있음.",
                      f"replication {rc.name!r} has no keeper: whoever takes over this "
                      "county host (or its key) can erase the replica and its history."),
                    t("백업 호스트에 `sentinel keeper`를 두고 [replication.keeper]를 설정하십시오 "
                      "(docs/keeper.md).",
                      "Run `sentinel keeper` on the backup host and set "
                      "[replication.keeper] (docs/keeper.md)."),
                )
            )  # fmt: skip
        if not rc.versions_retention:
            out.append(
                Finding(
                    "medium", f"replication[{i}].versions_retention",
                    t(f"복제 {rc.name!r}가 지워지거나 덮어쓴 파일을 보관하지 않음: 랜섬웨어가 "
                      "암호화한 파일이 원본을 그대로 대체함.",
                      f"replication {rc.name!r} keeps no deleted or overwritten files: "
                      "files encrypted by ransomware replace the originals on the replica."),
                    t('versions_retention = "30d" 등으로 보관 기간을 두십시오.',
                      'Keep versions for a while: versions_retention = "30d".'),
                )
            )  # fmt: skip
        if rc.strict_host_key_checking == "no":
            out.append(
                Finding(
                    "high", f"replication[{i}].strict_host_key_checking",
                    t(f"복제 {rc.name!r}의 ssh 호스트 키를 확인하지 않음: 경로상의 누구나 백업 "
                      "호스트를 사칭해 공문서를 받음.",
                      f"replication {rc.name!r} does not check the ssh host key: anyone on "
                      "the path can pose as the backup host and receive the records."),
                    t('strict_host_key_checking = "yes"와 known_hosts를 설정하십시오.',
                      'Set strict_host_key_checking = "yes" and known_hosts.'),
                )
            )  # fmt: skip
        if rc.strict_host_key_checking == "accept-new":
            out.append(
                Finding(
                    "low", f"replication[{i}].strict_host_key_checking",
                    t("처음 연결할 때 본 호스트 키를 그대로 신뢰함 (accept-new).",
                      "the first host key seen is trusted as is (accept-new)."),
                    t('지문을 확인해 known_hosts에 넣고 "yes"로 두십시오.',
                      'Check the fingerprint into known_hosts and set "yes".'),
                )
            )  # fmt: skip
    w = c.web
    if w is not None and not is_loopback(w.listen):
        if w.view == "open":
            out.append(
                Finding(
                    "medium", "[web] view",
                    t(f"대시보드를 {w.listen}에서 로그인 없이 볼 수 있음: 전산실 상태를 "
                      "닿는 누구나 봄.",
                      f"the dashboard on {w.listen} can be viewed without a login: whoever "
                      "reaches it sees the room's state."),
                    t('view = "login"으로 두십시오.', 'Set view = "login".'),
                )
            )  # fmt: skip
        if w.base_url.startswith("http://"):
            out.append(
                Finding(
                    "medium", "[web] base_url",
                    t("링크와 로그인이 암호화 없는 http:// 주소로 나감.",
                      "links and logins go to a plain http:// address."),
                    t("https:// 주소를 쓰십시오.", "Use an https:// address."),
                )
            )  # fmt: skip
    return out
