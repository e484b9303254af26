"""Registered secrets are masked as whole tokens: a short topic that is also a common word
must not garble every path in the log, and must still never appear on its own."""

from __future__ import annotations

import logging

from sentinel.secrets import SecretMaskingFilter

TG = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def _masked(masking: SecretMaskingFilter, text: str) -> str:
    record = logging.LogRecord("x", logging.INFO, "", 0, text, None, None)
    masking.filter(record)
    return record.getMessage()


def test_a_topic_that_is_a_word_masks_only_the_word():
    masking = SecretMaskingFilter(["ntfy://ntfy.example.org/sentinel"])
    line = "wrote .sentinel-target in /srv/replica; sentinels running; see sentinel.toml"
    assert _masked(masking, line) == line
    for text in (
        "topic sentinel.",
        "topic 'sentinel'",
        "POST /sentinel HTTP/1.1",
        "url ntfy://ntfy.example.org/sentinel failed",
        "sentinel",
    ):
        shown = _masked(masking, text)
        assert "sentinel" not in shown, shown


def test_a_token_stays_masked_next_to_escapes_and_punctuation():
    masking = SecretMaskingFilter([f"tgram://{TG}/987654321"])
    for text in (
        f"bot{TG.replace(':', '%3A')}/send",
        f"/bot{TG}/sendMessage",
        f"({TG})",
        f"got {TG}.",
    ):
        shown = _masked(masking, text)
        assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in shown, shown


def test_a_short_token_is_masked_wherever_it_stands_alone():
    masking = SecretMaskingFilter(["json://127.0.0.1:18831/hook/t123456789?cto=1"])
    for text in (
        "POST /hook/t123456789 HTTP/1.1",
        "token t123456789, retry",
        "t123456789",
        "id=t123456789&x",
    ):
        shown = _masked(masking, text)
        assert "t123456789" not in shown and "123456789" not in shown, shown


def test_a_password_of_letters_and_digits_is_masked_even_glued_to_a_word():
    # A channel's error text may glue a token to other characters ("Bearer_<token>");
    # a word-like secret keeps the whole-token rule above, a random-looking one does not.
    masking = SecretMaskingFilter(["json://user:s3cr3t9x@127.0.0.1:18831/hook"])
    for text in ("Authorization: Bearer_s3cr3t9x", "xs3cr3t9x.", "s3cr3t9x"):
        shown = _masked(masking, text)
        assert "s3cr3t9x" not in shown, shown
