"""sentinel.secrets: planted secrets never reach a log line, and credential files that others
can read are refused with the command that fixes them."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel.secrets import (
    MASK,
    CredentialFileError,
    SecretMaskingFilter,
    check_credential_files,
    check_private,
    install_masking,
    mask,
    secret_parts,
    urls_in,
)

TG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
DISCORD = "JHMHI8qBe7bk2ZwO5U711o3dV_js"
MQTT_PASSWORD = "correct horse battery"
RSYNC_PASSWORD = "Zt7#kq!pl0x"
APPRISE_YAML = f"""
version: 1
urls:
  - tgram://{TG_TOKEN}/987654321:
      tag: critical
  - mailto://ops:MailPa55word@mail.county.example?to=it@county.example
  - json://sms-gw.county.example:8080/api/send?apikey=SmsApiKey9&to=01012345678
  - discord://4174216298/{DISCORD}
"""
NOBODY = 65534
PLANTED = [
    TG_TOKEN,
    DISCORD,
    "MailPa55word",
    "SmsApiKey9",
    MQTT_PASSWORD,
    RSYNC_PASSWORD,
]


@pytest.mark.parametrize(
    ("text", "shown", "hidden"),
    [
        (
            "mqtt://sentinel:hunter2@broker.local:1883",
            "mqtt://sentinel:****@broker.local:1883",
            "hunter2",
        ),
        (f"tgram://{TG_TOKEN}/987654321", "tgram://****/****", TG_TOKEN),
        (f"discord://4174216298/{DISCORD}", "discord://****/****", DISCORD),
        (
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general",
            "slack://****/****/****/#general",
            "TIiajkdnlazkcOXrIdevi7FQ",
        ),
        (
            "json://gw.example:8080/api/send?pass=pw123&token=tok9&apikey=k3y&to=ops",
            "json://gw.example:8080/api/send?pass=****&token=****&apikey=****&to=ops",
            "tok9",
        ),
        (
            "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "https://hooks.slack.com/services/T000/B000/****",
            "XXXXXXXXXXXXXXXXXXXXXXXX",
        ),
        (
            "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
            "pover://****@****",
            "azGDORePK8gMaC0QOYAMyEEuzJnyUi",
        ),
        ('auth failed: password = "s3cr3t value", retrying', 'password = "****"', "s3cr3t"),
    ],
)
def test_mask_hides_credentials_and_keeps_scheme_and_host(
    text: str, shown: str, hidden: str
) -> None:
    masked = mask(f"sending via {text} failed")
    assert shown in masked
    assert hidden not in masked


def test_mask_hides_named_values_outside_urls() -> None:
    text = "refresh_token=abc123 client_secret: 'zz9' mqtt_password = p4ss; secrets file gone"
    assert mask(text) == (
        "refresh_token=**** client_secret: '****' mqtt_password = ****; secrets file gone"
    )


def test_mask_leaves_plain_text_and_plain_urls_alone() -> None:
    text = "rsync to rsync://sentinel@backup.health.example/onnara/ took 2.5s; 3 files"
    assert mask(text) == text


def test_mask_is_idempotent() -> None:
    once = mask(APPRISE_YAML)
    assert mask(once) == once


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=200))
def test_mask_never_fails_on_any_text(text: str) -> None:
    assert isinstance(mask(text), str)


def test_urls_and_their_secret_parts_are_found_in_an_apprise_config() -> None:
    urls = urls_in(APPRISE_YAML)
    assert [url.split("://")[0] for url in urls] == ["tgram", "mailto", "json", "discord"]
    assert TG_TOKEN in secret_parts(urls[0])
    assert secret_parts(urls[1]) == ["MailPa55word"]
    assert secret_parts(urls[2]) == ["SmsApiKey9"]  # a phone number is not a credential


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, SecretMaskingFilter]]:
    """A logger whose handler has the filter, the secrets of a whole config registered."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("test.secrets")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    masking = install_masking([MQTT_PASSWORD, RSYNC_PASSWORD], logger=logger)
    masking.add_urls_from(APPRISE_YAML)
    yield logger, stream, masking
    logger.removeHandler(handler)


def assert_clean(output: str) -> None:
    for secret in PLANTED:
        assert secret not in output, f"{secret!r} leaked into: {output}"


def test_registered_secrets_are_masked_in_message_and_args(logged) -> None:
    logger, stream, _ = logged
    logger.info("connecting with password %s", MQTT_PASSWORD)
    logger.warning("rsync said: @ERROR: auth failed for %r (%s)", RSYNC_PASSWORD, 5)
    logger.error(f"channel {TG_TOKEN} unreachable")  # an f-string: no args at all
    logger.info("%(user)s %(pw)s", {"user": "ops", "pw": "MailPa55word"})
    output = stream.getvalue()
    assert_clean(output)
    assert output.count(MASK) >= 4
    assert "connecting with password ****" in output


def test_registered_url_stays_recognisable(logged) -> None:
    logger, stream, _ = logged
    logger.warning(
        "delivery failed: %s", "mailto://ops:MailPa55word@mail.county.example?to=it@county.example"
    )
    assert "mailto://ops:****@mail.county.example" in stream.getvalue()


def test_secrets_in_exceptions_and_tracebacks_are_masked(logged) -> None:
    logger, stream, _ = logged
    try:
        raise ConnectionError(
            f"could not reach json://sms-gw.county.example:8080/api/send"
            f"?apikey=SmsApiKey9 as user with {RSYNC_PASSWORD}"
        )
    except ConnectionError:
        logger.exception("notify failed")
    try:
        try:
            raise ValueError(MQTT_PASSWORD)
        except ValueError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as exc:
        logger.error("chained", exc_info=exc)
    logger.info("where am i, token=%s", "tok_" + DISCORD, stack_info=True)
    output = stream.getvalue()
    assert "Traceback" in output and "ConnectionError" in output
    assert_clean(output)
    assert "apikey=****" in output


def test_unregistered_url_secrets_are_masked_by_shape(logged) -> None:
    logger, stream, _ = logged
    logger.info("new channel kakao://RestApiKey0123456789abcdef/Refresh42Token/")
    output = stream.getvalue()
    assert "RestApiKey0123456789abcdef" not in output and "Refresh42Token" not in output
    assert "kakao://" in output


def test_a_broken_format_string_is_still_logged_and_masked(logged) -> None:
    logger, stream, _ = logged
    logger.info("bad %d format", MQTT_PASSWORD)
    assert "bad" in stream.getvalue()
    assert_clean(stream.getvalue())


def test_secrets_added_later_are_masked_from_then_on(logged) -> None:
    logger, stream, masking = logged
    masking.add("late-added-token-77")
    logger.info("token late-added-token-77 in use")
    assert "late-added-token-77" not in stream.getvalue()


def test_tiny_secrets_are_not_registered() -> None:
    masking = SecretMaskingFilter(["ab", ""])
    assert masking.redact("a tab and a crab") == "a tab and a crab"


def test_redact_serves_status_and_error_text_too(logged) -> None:
    _, _, masking = logged
    status = f'{{"channel": "tgram://{TG_TOKEN}/987654321", "mqtt": "{MQTT_PASSWORD}"}}'
    assert_clean(masking.redact(status))


# --- credential files -------------------------------------------------------------------


def make(path: Path, mode: int) -> Path:
    path.write_text("secret\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400, 0o440])
def test_private_modes_pass(tmp_path: Path, mode: int) -> None:
    check_private(make(tmp_path / "apprise.yml", mode), what="Apprise config")


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        (0o644, "other users can read it"),
        (0o604, "other users can read it"),
        (0o602, "other users can write it"),
        (0o660, "its group can write it"),
        (0o666, "other users can read and write it and its group can write it"),
    ],
)
def test_readable_or_writable_by_others_is_refused_with_the_fix(
    tmp_path: Path, mode: int, problem: str
) -> None:
    path = make(tmp_path / "rsync.password", mode)
    with pytest.raises(CredentialFileError) as err:
        check_private(path, what="rsync password file")
    message = str(err.value)
    assert str(path) in message and "rsync password file" in message
    assert problem in message
    assert f"mode {mode:04o}" in message
    # We run the tests as root: a root-owned file gets the root:sentinel 0640 fix.
    if os.geteuid() == 0:
        assert f"sudo chown root:sentinel {path} && sudo chmod 640 {path}" in message


def test_the_suggested_fix_actually_fixes_it(tmp_path: Path) -> None:
    path = make(tmp_path / "apprise.yml", 0o666)
    with pytest.raises(CredentialFileError) as err:
        check_private(path, what="Apprise config")
    path.chmod(int(err.value.fix.rsplit("chmod ", 1)[1].split()[0], 8))
    check_private(path, what="Apprise config")


def test_file_owned_by_the_daemon_user_is_told_chmod_600(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    path = make(tmp_path / "id_ed25519", 0o644)
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(CredentialFileError) as err:
        check_private(path, what="ssh key", uid=NOBODY)
    assert err.value.fix == f"chmod 600 {path}"
    path.chmod(0o600)
    check_private(path, what="ssh key", uid=NOBODY)


def test_odd_paths_are_quoted_in_the_fix(tmp_path: Path) -> None:
    path = make(tmp_path / "my secrets.yml", 0o644)
    with pytest.raises(CredentialFileError) as err:
        check_private(path, what="Apprise config")
    assert f"chmod 640 '{path}'" in str(err.value)


def test_missing_file_is_a_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(CredentialFileError, match="file not found"):
        check_private(tmp_path / "nope", what="ssh key")


def test_check_credential_files_lists_every_problem(tmp_path: Path) -> None:
    good = make(tmp_path / "sentinel.toml", 0o640)
    bad = make(tmp_path / "apprise.yml", 0o644)
    worse = make(tmp_path / "rsync.password", 0o666)
    problems = check_credential_files(
        [(good, "config with passwords"), (bad, "Apprise config"), (worse, "rsync password")]
    )
    assert len(problems) == 2
    assert "apprise.yml (Apprise config)" in problems[0]
    assert "rsync.password (rsync password)" in problems[1]
    assert check_credential_files([(good, "config")]) == []
    assert "secret" not in " ".join(problems)  # never the contents
