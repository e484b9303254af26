"""Signed ack links: the key file, signing and checking (over HTTP further below)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from sentinel.web.ack_links import KEY_NAME, AckLinks, KeyFileError, load_key

NOW = 1_700_000_000.0


def test_the_key_is_made_once_0600(tmp_path: Path) -> None:
    key = load_key(tmp_path)
    path = tmp_path / KEY_NAME
    assert len(key) == 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key(tmp_path) == key
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_NAME]


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    load_key(tmp_path)
    os.chmod(tmp_path / KEY_NAME, 0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_key(tmp_path)


def test_a_symlink_in_place_of_the_key_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(os.urandom(32))
    os.chmod(elsewhere, 0o600)
    state = tmp_path / "state"
    state.mkdir()
    (state / KEY_NAME).symlink_to(elsewhere)
    with pytest.raises(KeyFileError):
        load_key(state)


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    fd = os.open(tmp_path / KEY_NAME, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"short")
    os.close(fd)
    with pytest.raises(KeyFileError, match="5 bytes"):
        load_key(tmp_path)


def test_links_check_out_until_they_expire(tmp_path: Path) -> None:
    links = AckLinks(tmp_path, ttl=3600, base_url="https://sentinel.example:8443/")
    link = links.link("a7f3", NOW)
    assert link is not None and link.startswith("https://sentinel.example:8443/ack/A7F3?")
    query = parse_qs(urlsplit(link).query)
    exp, sig = query["exp"][0], query["sig"][0]
    assert int(exp) == NOW + 3600 and len(sig) == 32
    assert links.check("A7F3", exp, sig, NOW) is None
    assert links.check("A7F3", exp, sig.upper(), NOW) is None
    assert links.check("A7F3", exp, sig, NOW + 3600) == "expired"
    assert links.check("B8G4", exp, sig, NOW) == "forged"  # another alarm
    assert links.check("A7F3", str(int(exp) + 86400), sig, NOW) == "forged"  # longer life
    assert links.check("A7F3", exp, "0" * 32, NOW) == "forged"
    assert links.check("A7F3", None, sig, NOW) == "forged"
    assert links.check("A7F3", "-1", sig, NOW) == "forged"
    other = AckLinks(tmp_path / "other", ttl=3600, base_url="")
    (tmp_path / "other").mkdir()
    assert other.link("A7F3", NOW) is None  # no host to put in an SMS
    assert other.check("A7F3", exp, sig, NOW) == "forged"  # another key
