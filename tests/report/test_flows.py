"""The security pack's flow table and findings: every endpoint a config names is a flow and
is printed, no secret is, and each weak setting is a finding (a clean config has none).

The expected endpoints are read from the TOML and the Apprise file here, independently of
flows(); the report is `sentinel.report.security.render`."""

from __future__ import annotations

import re
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from sentinel.config.loader import load_config
from sentinel.report import security
from sentinel.report.context import Lang, ReportContext
from sentinel.report.findings import findings
from sentinel.report.flows import Flow, flows

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    ROOT / "examples/sentinel.toml",
    ROOT / "systemd/sentinel.example.toml",
    ROOT / "systemd/sentinel-keeper.example.toml",
]
# where a URL's "host" is a token, the service's API host is the destination
API_HOSTS = {"tgram": "api.telegram.org", "kakao": "kapi.kakao.com"}
DEFAULT_PORTS = {"mqtt": 1883, "nut": 3493, "ssh": 22, "rsync": 873, "web": 8080}

# every secret of the hostile config carries this marker
MARK = "SECRET"
APPRISE = f"""\
urls:
  - "jsons://hookuser:pw{MARK}json1@hooks.county.example:8443/api/{MARK}path1?+X-Token={MARK}hdr1":
      tag: critical
  - "json://relay.county.example/notify/{MARK}token2":
      tag: critical, sms
  - "mailto://alerts:{MARK}mail3@mail.county.example?to=it@county.example":
      tag: warning
  - "mailtos://alerts:{MARK}mail4@smtp.county.example?to=it@county.example":
      tag: warning
  - "tgram://123456789:AAH{MARK}bot5xxxxxxxxxxxxxxxxxxxxxxxx/-1001234567890":
      tag: critical
  - "kakao://{MARK}restkey6/{MARK}refresh6":
      tag: critical
  - "aligo://countyid:{MARK}aligo7@0212345678/01012345678?url=http://sms-relay.county.example:8080":
      tag: sms
  - "nhnsms://{MARK}appkey8:{MARK}nhn8@0212345678/01012345678":
      tag: sms
  - "smsagentmysql://agent:{MARK}mysql9@smsdb.county.example:3307/smsdb/01012345678?preset=uplus&from=0212345678":
      tag: sms
  - "smsagentpg://agent:{MARK}pg10@pgdb.county.example/smsdb/01012345678?preset=uplus&from=0212345678":
      tag: sms
  - "modem:///dev/ttyUSB2/01012345678?pin=4321":
      tag: fallback
"""
# (destination, port) the Apprise file above names, worked out by hand from each provider's
# documentation and the URLs (not from flows())
APPRISE_ENDPOINTS = {
    ("hooks.county.example", 8443),
    ("relay.county.example", 80),
    ("mail.county.example", 25),
    ("smtp.county.example", 587),
    ("api.telegram.org", 443),
    ("kapi.kakao.com", 443),
    ("sms-relay.county.example", 8080),
    ("api-sms.cloud.toast.com", 443),
    ("smsdb.county.example", 3307),
    ("pgdb.county.example", 5432),
}


def hostile_toml(d: Path) -> str:
    return f"""\
[site]
name = "hostile"
[daemon]
state_dir = "{d}/state"
[mqtt]
host = "broker.county.example"
port = 1884
username = "sentinel"
password = "mq{MARK}mqtt11"
[[nut]]
name = "ups"
host = "ups.county.example"
port = 3494
username = "monuser"
password = "nut{MARK}nut12"
[[serial]]
name = "conv"
url = "socket://converter.county.example:4001"
[[sensors]]
id = "leak"
kind = "water_leak"
topic = "zigbee2mqtt/leak"
[[sensors]]
id = "temp"
kind = "temperature"
topic = "zigbee2mqtt/temp"
[[outputs]]
name = "siren"
kind = "mqtt"
topic = "cmnd/siren/POWER"
[alerts]
apprise_config = "apprise.yml"
[[replication]]
name = "plain"
source = "{d}/src1"
target = "rsync://sentinel@backup.county.example/onnara"
password_file = "rsync.secret"
versions_retention = "0s"
[[replication]]
name = "ssh"
source = "{d}/src2"
target = "sentinel-replica@backup2.county.example:"
ssh_port = 2222
identity_file = "id_write"
strict_host_key_checking = "no"
[replication.keeper]
receipt = "sentinel-replica@backup2.county.example::ssh-receipt/receipt.json"
history = "sentinel-keeper@keeper.county.example::ssh-history"
history_identity_file = "id_drill"
[web]
listen = "0.0.0.0"
port = 8443
users_file = "web-users"
base_url = "http://sentinel.county.example:8443"
"""


# (destination, port) of the hostile config, by hand
HOSTILE_ENDPOINTS = APPRISE_ENDPOINTS | {
    ("broker.county.example", 1884),
    ("ups.county.example", 3494),
    ("converter.county.example", 4001),
    ("backup.county.example", 873),
    ("backup2.county.example", 2222),
    ("keeper.county.example", 2222),
    ("0.0.0.0", 8443),
}


def context(path: Path, lang: Lang = "ko") -> ReportContext:
    return ReportContext(
        config=load_config(path),
        config_path=path,
        config_hash="0" * 64,
        generated=time.time(),
        lang=lang,
        state=None,
        restore_dir=path.parent / "restore",
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    for name in ("src1", "src2", "state"):
        (d / name).mkdir()
    (d / "apprise.yml").write_text(APPRISE)
    (d / "rsync.secret").write_text(f"rs{MARK}rsync13\n")
    (d / "web-users").write_text(f"admin:$argon2id$v=19$m=65536,t=3,p=4$salt{MARK}hash14\n")
    for key in ("id_write", "id_drill"):
        (d / key).write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{MARK}key15\n")
    (d / "sentinel.toml").write_text(hostile_toml(d))
    return d / "sentinel.toml"


def endpoints_named(path: Path) -> set[tuple[str, int]]:
    """The network endpoints a config names, read from its TOML and Apprise file."""
    data = tomllib.loads(path.read_text())
    found: set[tuple[str, int]] = set()
    if "mqtt" in data:
        found.add((data["mqtt"].get("host", "127.0.0.1"), data["mqtt"].get("port", 1883)))
    for nut in data.get("nut", []):
        found.add((nut.get("host", "127.0.0.1"), nut.get("port", 3493)))
    if "web" in data:
        found.add((data["web"].get("listen", "127.0.0.1"), data["web"].get("port", 8080)))
    for rc in data.get("replication", []):
        addresses = [rc["target"]] + [
            rc.get("keeper", {}).get(k) for k in ("receipt", "history") if rc.get("keeper")
        ]
        for address in filter(None, addresses):
            if address.startswith("rsync://"):
                parts = urlsplit(address)
                found.add((parts.hostname or "", parts.port or 873))
            elif not address.startswith("/"):
                host = address.split(":", 1)[0].rsplit("@", 1)[-1]
                found.add((host, rc.get("ssh_port", 22)))
    apprise = data.get("alerts", {}).get("apprise_config")
    if apprise and (path.parent / apprise).exists():
        doc = yaml.safe_load((path.parent / apprise).read_text())
        for entry in doc["urls"]:
            url = entry if isinstance(entry, str) else next(iter(entry))
            parts = urlsplit(url)
            scheme = parts.scheme
            if scheme in API_HOSTS:
                found.add((API_HOSTS[scheme], 443))
            elif scheme in ("json", "jsons") and parts.hostname:
                found.add((parts.hostname, parts.port or (443 if scheme == "jsons" else 80)))
            elif scheme in ("mailto", "mailtos") and parts.hostname:
                found.add((parts.hostname, parts.port or (587 if scheme == "mailtos" else 25)))
    return found


def in_report(report: str, host: str, port: int | None) -> bool:
    """Whether one table row of the report names this destination and port."""
    for line in report.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if host in cells and (port is None or str(port) in cells):
            return True
    return False


def secrets_in(path: Path) -> list[str]:
    """Every secret a config file or its Apprise file holds, read here from the files."""
    text = path.read_text()
    data = tomllib.loads(text)
    found = [
        str(s.get("password"))
        for s in [data.get("mqtt", {}), *data.get("nut", [])]
        if s.get("password")
    ]
    apprise = data.get("alerts", {}).get("apprise_config")
    if apprise and (path.parent / apprise).exists():
        doc = yaml.safe_load((path.parent / apprise).read_text())
        for entry in doc["urls"]:
            url = entry if isinstance(entry, str) else next(iter(entry))
            parts = urlsplit(url)
            if parts.password:
                found.append(parts.password)
            if parts.hostname and "." not in parts.hostname and parts.hostname.isalpha():
                found.append(parts.hostname)  # a key in the host's place (kakao://KEY)
            found += [s for s in parts.path.split("/") if len(s) >= 8 and not s.isdigit()]
            found += [s for s in re.findall(r"[:/]([A-Za-z0-9_-]{20,})", url)]
    return found


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("lang", ["ko", "en"])
def test_every_endpoint_of_the_examples_is_a_flow_and_printed(path: Path, lang: Lang) -> None:
    ctx = context(path, lang)
    got = {(f.destination, f.port) for f in flows(ctx)}
    report = security.render(ctx)
    for host, port in endpoints_named(path):
        assert (host, port) in got, f"{host}:{port} of {path.name} is no flow"
        assert in_report(report, host, port), f"{host}:{port} is not in the report"
    for secret in secrets_in(path):
        assert secret not in report
    # local devices and outputs are rows too, named by where the config sets them
    data = tomllib.loads(path.read_text())
    keys = {f.config_key for f in flows(ctx)}
    for section in ("serial", "modbus", "outputs", "nut"):
        for i, _ in enumerate(data.get(section, [])):
            assert f"{section}[{i}]" in keys


def test_the_example_apprise_file_is_read_and_masked() -> None:
    # the endpoint walk above would pass on an empty file: the example's five channels and
    # its known secrets are checked here by name
    ctx = context(EXAMPLES[0], "en")
    alerts = [f for f in flows(ctx) if f.part == "alert"]
    assert len(alerts) == 5
    report = security.render(ctx)
    for secret in (
        "yourkakaorestapikey0000",
        "your-refresh-token-0000",
        "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "PASSWORD",
        "01012345678",
    ):
        assert secret not in report
    mail = next(f for f in alerts if f.destination == "mail.example.go.kr")
    assert (mail.port, mail.encrypted, mail.encryption) == (587, True, "STARTTLS")


def test_a_keeper_config_shows_what_comes_in_from_each_room() -> None:
    ctx = context(EXAMPLES[2], "en")
    data = tomllib.loads(EXAMPLES[2].read_text())
    rooms = [r["name"] for r in data["keeper"]["rooms"]]
    incoming = [f for f in flows(ctx) if f.direction == "in" and f.part == "keeper"]
    for room in rooms:
        names = {f.name for f in incoming if f.config_key.startswith("keeper.rooms")}
        assert {f"{room} landing", f"{room}-receipt", f"{room}-history"} <= names
    history = next(f for f in incoming if f.name.endswith("-history"))
    assert "drill key" in history.auth and history.encrypted


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_hostile_config_every_endpoint_printed_and_no_secret(hostile: Path, lang: Lang) -> None:
    ctx = context(hostile, lang)
    found = flows(ctx)
    got = {(f.destination, f.port) for f in found}
    assert endpoints_named(hostile) <= HOSTILE_ENDPOINTS  # the hand list covers the file
    report = security.render(ctx)
    for host, port in HOSTILE_ENDPOINTS:
        assert (host, port) in got, f"{host}:{port} is no flow"
        assert in_report(report, host, port), f"{host}:{port} is not in the report"
    assert MARK not in report
    for f in found:
        assert MARK not in repr(f)
    # the modem is a local device, not a network flow
    modem = next(f for f in found if f.name.startswith("modem://"))
    assert (modem.port, modem.encrypted, modem.direction) == (None, None, "local")
    assert "01012345678" not in report  # recipients are personal data, on no channel
    # leak and smoke get their own broker connection next to the temperature sensor's
    assert {f.name for f in found if f.part == "mqtt"} >= {"sentinel", "sentinel-safety"}


def by_key(found: list[Flow], part: str, name: str) -> Flow:
    return next(f for f in found if f.part == part and f.name == name)


def test_hostile_flows_say_how_each_is_protected(hostile: Path) -> None:
    found = flows(context(hostile, "en"))
    plain = by_key(found, "replication", "plain")
    assert (plain.encrypted, plain.port) == (False, 873)
    assert "password file" in plain.auth
    ssh = by_key(found, "replication", "ssh")
    assert ssh.encrypted and "NOT checked" in ssh.encryption and "rrsync" in ssh.note
    history = by_key(found, "keeper", "ssh history")
    assert "id_drill" in history.auth
    mqtt = by_key(found, "mqtt", "sentinel")
    assert mqtt.encrypted is False and "sentinel" in mqtt.auth
    web = by_key(found, "web", "dashboard")
    assert (web.protocol, web.encrypted) == ("HTTP", False)
    mail = next(f for f in found if f.destination == "mail.county.example")
    assert mail.encrypted is False
    relay = next(f for f in found if f.destination == "sms-relay.county.example")
    assert (relay.protocol, relay.encrypted) == ("HTTP", False)
    mysql = next(f for f in found if f.destination == "smsdb.county.example")
    assert mysql.encrypted is False and "agent" in mysql.auth


def test_hostile_findings_name_each_weak_setting_worst_first(hostile: Path) -> None:
    ctx = context(hostile, "en")
    got = findings(ctx, flows(ctx))
    keys = {(f.severity, f.config_key) for f in got}
    expected = {
        ("high", "replication[0].target"),  # plain rsync daemon over the network
        ("high", "replication[1].strict_host_key_checking"),  # host key not checked
        ("low", "replication[1].target"),  # forced command: check authorized_keys
        ("high", "[mqtt] tls"),  # a password over plain MQTT
        ("high", "[web] listen"),  # dashboard beyond loopback without TLS
        ("medium", "[web] view"),
        ("medium", "[web] base_url"),
        ("low", "[web] metrics"),
        ("medium", "[alerts] apprise_config, urls[1]"),  # json:// to another host
        ("high", "[alerts] apprise_config, urls[2]"),  # mailto with a login, no TLS
        ("medium", "[alerts] apprise_config, urls[6]"),  # gateway through an http relay
        ("medium", "[alerts] apprise_config, urls[8]"),  # SMS agent MySQL without TLS
        ("medium", "nut[0]"),
        ("medium", "serial[0]"),
        ("medium", "replication[0].keeper"),  # no keeper
        ("medium", "replication[0].versions_retention"),
    }
    assert expected <= keys, expected - keys
    # https, mailtos and the API channels are not findings
    for n in (0, 3, 4, 5, 7):
        assert not any(f.config_key.endswith(f"urls[{n}]") for f in got)
    ranks = [("high", "medium", "low").index(f.severity) for f in got]
    assert ranks == sorted(ranks)
    # one setting, one finding: not one per flow it affects
    assert len(got) == len({(f.config_key, f.problem) for f in got})
    assert [f.config_key for f in got].count("replication[1].strict_host_key_checking") == 1
    for f in got:
        assert MARK not in f.problem + f.fix
    ko = findings(context(hostile, "ko"), flows(context(hostile, "ko")))
    assert len(ko) == len(got) and "평문" in ko[0].problem


def test_a_clean_config_has_no_findings(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "replica").mkdir()
    (tmp_path / "apprise.yml").write_text(
        'urls:\n  - "jsons://hooks.county.example/api/hook":\n      tag: critical\n'
    )
    path = tmp_path / "sentinel.toml"
    path.write_text(
        f"""\
[mqtt]
host = "127.0.0.1"
[alerts]
apprise_config = "apprise.yml"
[[replication]]
name = "docs"
source = "{tmp_path}/src"
target = "{tmp_path}/replica"
[replication.keeper]
receipt = "{tmp_path}/replica/receipt.json"
[web]
listen = "127.0.0.1"
"""
    )
    ctx = context(path, "en")
    found = flows(ctx)
    assert {f.part for f in found} >= {"mqtt", "alert", "replication", "keeper", "web"}
    assert findings(ctx, found) == []


def test_an_unreadable_apprise_file_is_one_row_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "sentinel.toml"
    path.write_text('[alerts]\napprise_config = "missing.yml"\n')
    ctx = context(path, "en")
    rows = [f for f in flows(ctx) if f.part == "alert"]
    assert len(rows) == 1 and "not readable" in rows[0].note
    assert "missing.yml" in security.render(ctx)
    assert any(f.config_key == "[alerts] apprise_config" for f in findings(ctx, rows))
