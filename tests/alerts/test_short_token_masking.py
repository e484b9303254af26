"""A channel's secret path token of three characters is masked in its error texts and in
the guarded library logs, as the daemon's log masker masks it (common/redaction.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from alerts.channels import LOG_GUARD, load_channels
from sentinel.secrets import SecretMaskingFilter
from tests.alerts.helpers import write_apprise

# Short, but token-shaped (a digit among letters): not a word anybody else would write.
SHORT_TOKENS = ("k9x", "7qz")
URLS = (
    "json://127.0.0.1:9/k9x",
    "kakao://7qz/k9x",
)


@pytest.mark.parametrize("url", URLS)
def test_a_short_path_token_is_scrubbed_from_a_channel_error(tmp_path: Path, url: str) -> None:
    (channel,) = load_channels(write_apprise(tmp_path / "apprise.yml", [(url, [])]))
    shown = channel.scrub("POST /k9x HTTP/1.1 refused; token k9x, host 7qz")
    assert [t for t in SHORT_TOKENS if t in url and t in shown] == [], shown
    assert "POST" in shown and "refused" in shown  # the rest of the reason stays


def test_a_short_path_token_is_kept_out_of_guarded_library_logs(tmp_path: Path) -> None:
    load_channels(write_apprise(tmp_path / "apprise.yml", [(URLS[0], [])]))
    record = logging.LogRecord(
        "urllib3.connectionpool", logging.DEBUG, "", 0, '"POST /k9x HTTP/1.1" 500', None, None
    )
    LOG_GUARD.filter(record)
    assert "k9x" not in record.getMessage()


def test_the_daemon_masker_and_the_channel_agree(tmp_path: Path) -> None:
    """Both masks come from one rule: what the log masker hides, the channel hides too."""
    url = URLS[0]
    (channel,) = load_channels(write_apprise(tmp_path / "apprise.yml", [(url, [])]))
    text = "sending to json://127.0.0.1:9/k9x failed: POST /k9x; retry k9x"
    assert "k9x" not in SecretMaskingFilter([url]).redact(text)
    assert "k9x" not in channel.scrub(text)
