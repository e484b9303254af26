"""Channels from Apprise's YAML: masking, stable keys, message form, routing, own schemes."""

from __future__ import annotations

from pathlib import Path

from alerts.channels import count_channels, load_channels
from alerts.event import AlarmEvent
from alerts.outbox import Outbox
from tests.alerts.helpers import write_apprise


def test_keys_are_stable_when_the_file_is_reordered(tmp_path: Path):
    urls = [
        ("json://127.0.0.1:9/a", ["critical"]),
        ("mailto://u:pw123456@example.com", []),
        ("json://127.0.0.1:9/b", ["warning"]),
    ]
    one = load_channels(write_apprise(tmp_path / "1.yml", urls))
    two = load_channels(write_apprise(tmp_path / "2.yml", list(reversed(urls))))
    # paths are masked (json://127.0.0.1:9/****): tell the channels apart by their tags
    assert {c.tags: c.key for c in one} == {c.tags: c.key for c in two}
    assert len({c.key for c in one}) == 3
    assert count_channels(tmp_path / "1.yml") == 3


def test_form_rule(tmp_path: Path):
    channels = load_channels(
        write_apprise(
            tmp_path / "a.yml",
            [
                ("json://127.0.0.1:9/gw", []),  # SMS gateway webhook -> sms
                ("json://127.0.0.1:9/m", ["lms"]),  # tag wins -> long
                ("mailto://u:pw123456@example.com", []),  # e-mail -> long
                ("console://", ["sms"]),  # tag wins -> sms
            ],
        )
    )
    assert [c.form for c in channels] == ["sms", "long", "long", "sms"]


def test_routing(tmp_path: Path):
    channels = load_channels(
        write_apprise(
            tmp_path / "a.yml",
            [
                ("json://127.0.0.1:9/c", ["critical"]),
                ("json://127.0.0.1:9/w", ["warning"]),
                ("json://127.0.0.1:9/any", ["always"]),
                ("json://127.0.0.1:9/l2", ["level2"]),
            ],
        )
    )
    outbox = Outbox(channels, {"critical": ["critical"], "warning": ["warning"]})

    def paths(severity: str, tags: tuple[str, ...] = ()) -> list[str]:
        event = AlarmEvent("A1", "firing", severity, "s", "", "smoke", True, "", "", 0.0, tags)
        names = ["c", "w", "any", "l2"]  # the URLs' paths, which display masks
        return [names[c.index] for c in outbox.route(event)]

    assert paths("critical") == ["c", "any"]
    assert paths("warning") == ["w", "any"]
    assert paths("info") == ["any"]
    assert paths("critical", ("level2",)) == ["any", "l2"]


def test_file_channel_appends_one_line_per_message(tmp_path: Path):
    import asyncio

    out = tmp_path / "alerts.log"
    [channel] = load_channels(write_apprise(tmp_path / "a.yml", [(f"sentinelfile://{out}", [])]))
    assert channel.display == f"sentinelfile://{out}"

    async def send() -> None:
        for n in (1, 2):
            result = await channel.apprise.async_notify(body=f"line {n}\nmore", title="t")
            assert result

    asyncio.run(send())
    assert out.read_text(encoding="utf-8").splitlines() == ["t: line 1 | more", "t: line 2 | more"]
