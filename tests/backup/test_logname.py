"""Which thread and sequence an archive-log file is (backup/logname.py)."""

from __future__ import annotations

import pytest

from backup.logname import LogName, LogNaming


def test_postgresql_segments_count_across_log_ids() -> None:
    pg = LogNaming("postgresql")
    assert pg.parse("0000000100000000000000FF") == LogName(1, 0xFF)
    assert pg.parse("000000010000000100000000") == LogName(1, 0x100)
    # a new timeline after a point-in-time recovery does not restart the count
    assert pg.parse("000000020000000100000001") == LogName(1, 0x101)


@pytest.mark.parametrize(
    "name",
    [
        "000000010000000000000003.partial",
        "00000002.history",
        "000000010000000000000003.00000028.backup",
        "000000010000000000000003.tmp",
        "0000000100000000000000fg",
    ],
)
def test_what_is_not_a_closed_postgresql_segment(name: str) -> None:
    assert LogNaming("postgresql").parse(name) is None


def test_oracle_and_tibero_names_carry_the_thread() -> None:
    assert LogNaming("oracle").parse("2_1234_1122334455.arc") == LogName(2, 1234)
    assert LogNaming("oracle").parse("2_1234_1122334455.arc.tmp") is None
    assert LogNaming("tibero").parse("log-t1-r0-s77.arc") == LogName(1, 77)


def test_a_configured_pattern_wins() -> None:
    naming = LogNaming("oracle", r"^arch_(?P<seq>\d+)\.log$")
    assert naming.parse("arch_0042.log") == LogName(1, 42)
    assert naming.parse("1_42_99.arc") is None


def test_an_unknown_preset_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log naming preset"):
        LogNaming("db2")


def test_only_the_whole_name_is_a_log() -> None:
    """`$` alone matches before a final newline, and a pattern without `$` would take an
    archive command's unfinished copy: neither may count as an arrived log."""
    assert LogNaming("postgresql").parse("000000010000000000000005\n") is None
    assert LogNaming("oracle").parse("1_7_9.arc\n") is None
    naming = LogNaming(None, r"(?P<seq>\d+)\.arc")
    assert naming.parse("7.arc") == LogName(1, 7)
    assert naming.parse("7.arc.tmp") is None
