"""The NUT source against a real upsd with Debian's dummy-ups driver (tests/fixtures/nut.py).

The tests share one upsd per module and leave its UPS on mains when they end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensors.nut import NutSource, nut_binding, nut_error
from tests.fixtures.nut import ON_MAINS, Upsd
from tests.sensors.helpers import Collector, match


@pytest.fixture
def rack(upsd: Upsd) -> Iterator[Upsd]:
    """The module's upsd with "rack" on mains at the start and at the end of a test."""
    upsd.start()
    upsd.set("rack", **{k.replace(".", "_"): v for k, v in ON_MAINS.items()})
    try:
        yield upsd
    finally:
        upsd.start()
        upsd.set("rack", **{k.replace(".", "_"): v for k, v in ON_MAINS.items()})


def source(server: Upsd, *bindings: object, password: str | None = None) -> NutSource:
    return NutSource(
        "nut:main",
        server.host,
        server.port,
        bindings,  # type: ignore[arg-type]
        username="monitor" if password else None,
        password=password,
        interval=0.2,
        timeout=1.0,
    )


async def test_readings_follow_the_ups_from_mains_to_battery_and_back(rack: Upsd) -> None:
    src = source(
        rack,
        nut_binding("ups-ob", "ups_on_battery", "rack"),
        nut_binding("ups-lb", "ups_battery_low", "rack"),
        nut_binding("ups-rb", "ups_replace_battery", "rack"),
        nut_binding("ups-charge", "ups_charge", "rack"),
        nut_binding("ups-runtime", "ups_runtime", "rack"),
        nut_binding("ups-volt", "ups_input_voltage", "rack"),
        nut_binding("ups-load", "ups_load", "rack"),
        password=rack.password,
    )
    collector = Collector(src)
    try:
        ob = await collector.wait_for(match("ups-ob", "ups_on_battery"))
        assert ob.value == 0.0 and ob.unit == "s"  # on mains
        assert (await collector.wait_for(match("ups-charge", "ups_charge"))).value == 100.0
        assert (await collector.wait_for(match("ups-runtime", "ups_runtime"))).value == 1800.0
        assert (await collector.wait_for(match("ups-volt", "ups_input_voltage"))).unit == "V"
        assert (await collector.wait_for(match("ups-load", "ups_load"))).value == 23.0
        assert (await collector.wait_for(match("ups-lb", "ups_battery_low"))).value is False

        mark = len(collector.readings)
        rack.set("rack", ups_status="OB DISCHRG RB", battery_charge="61")
        first = await collector.wait_for(
            lambda r: r.sensor_id == "ups-ob" and bool(r.value), after=mark
        )
        # the first poll that sees OB already counts a second: the warning needs no wait
        assert first.value == 1.0
        assert (
            await collector.wait_for(match("ups-rb", "ups_replace_battery", True), after=mark)
        ).value
        later = await collector.wait_for(
            lambda r: r.sensor_id == "ups-ob" and (r.value or 0) >= 2.0, after=mark
        )
        assert later.ts > first.ts

        mark = len(collector.readings)
        rack.set("rack", ups_status="OB DISCHRG LB", battery_runtime="95")
        await collector.wait_for(match("ups-lb", "ups_battery_low", True), after=mark)
        assert (
            await collector.wait_for(match("ups-runtime", "ups_runtime"), after=mark)
        ).value in (95.0, 1800.0)

        mark = len(collector.readings)
        rack.set("rack", ups_status="OL CHRG")
        await collector.wait_for(match("ups-ob", "ups_on_battery", 0.0), after=mark)
        await collector.wait_for(match("ups-lb", "ups_battery_low", False), after=mark)
        assert src.health()["on_battery"] == []
    finally:
        await collector.stop()


async def test_upsd_down_makes_the_sensors_lost_and_back(rack: Upsd) -> None:
    src = source(rack, nut_binding("ups-ob", "ups_on_battery", "rack"))
    collector = Collector(src)
    try:
        await collector.wait_for(match("ups-ob", "ups_on_battery"))
        rack.stop_upsd()
        await collector.wait_for(match("ups-ob", "availability", False))
        health = src.health()
        assert health["state"] == "disconnected"
        assert "rack" in health["ups_down"] and health["last_error"]
        mark = len(collector.readings)
        rack.start_upsd()
        await collector.wait_for(match("ups-ob", "availability", True), after=mark)
        await collector.wait_for(match("ups-ob", "ups_on_battery", 0.0), after=mark)
        assert src.health()["ups_down"] == {}
    finally:
        await collector.stop()


async def test_a_poll_or_two_failing_is_not_lost(rack: Upsd) -> None:
    """upsd restarting (a package upgrade) or a moment of DATA-STALE fails a poll or two:
    no "sensor lost" page and all-clear for each sensor; the third failure in a row is."""
    src = source(rack, nut_binding("ups-ob", "ups_on_battery", "rack"))
    collector = Collector(src)
    try:
        await collector.wait_for(match("ups-ob", "ups_on_battery"))
        rack.stop_upsd()
        await collector.wait_health(lambda h: h["rejected"] >= 2)
        assert not [r for r in collector.readings if match("ups-ob", "availability", False)(r)]
        assert src.health()["ups_down"] == {}
        lost = await collector.wait_for(match("ups-ob", "availability", False))
        assert src.health()["rejected"] >= 3 and "rack" in src.health()["ups_down"]
        mark = len(collector.readings)
        rack.start_upsd()
        await collector.wait_for(match("ups-ob", "availability", True), after=mark)
        assert lost.fault is None
    finally:
        await collector.stop()


async def test_driver_gone_is_the_lost_path_with_upsd_s_word(rack: Upsd) -> None:
    """upsd up but its driver gone (a USB cable pulled): DRIVER-NOT-CONNECTED or, while upsd
    still holds the last values, DATA-STALE. Either way the sensor is lost, not "on mains"."""
    src = source(rack, nut_binding("ups-ob", "ups_on_battery", "rack"))
    collector = Collector(src)
    try:
        await collector.wait_for(match("ups-ob", "ups_on_battery"))
        rack.stop_driver("rack")
        await collector.wait_for(match("ups-ob", "availability", False))
        assert src.health()["ups_down"]["rack"] in ("DRIVER-NOT-CONNECTED", "DATA-STALE")
        mark = len(collector.readings)
        rack.start_driver("rack")
        await collector.wait_for(match("ups-ob", "availability", True), after=mark, within=20)
    finally:
        await collector.stop()


async def test_wrong_ups_name_is_lost_and_a_missing_variable_is_a_fault(rack: Upsd) -> None:
    """A typo in `ups` must not look like a UPS on mains; a UPS that does not report what a
    sensor reads (no battery.runtime) is a sensor fault, not a runtime of 0."""
    src = source(
        rack,
        nut_binding("typo", "ups_on_battery", "rakc"),
        nut_binding("ups-volt", "ups_input_voltage", "rack"),
    )
    rack.drop("rack", "input.voltage")  # the fixture puts it back
    collector = Collector(src)
    try:
        await collector.wait_for(match("typo", "availability", False))
        assert src.health()["ups_down"] == {"rakc": "UNKNOWN-UPS"}
        fault = await collector.wait_for(lambda r: r.sensor_id == "ups-volt" and r.fault)
        assert fault.value is None and "input.voltage" in (fault.fault or "")
        assert not [
            r for r in collector.readings if r.sensor_id == "typo" and r.kind != "availability"
        ]
    finally:
        await collector.stop()


def test_nut_error_keeps_upsd_s_word_and_no_password() -> None:
    from aionut import NUTCommandError, NUTLoginError

    assert (
        nut_error(NUTCommandError("Error running: LIST VAR rack: ERR DATA-STALE")) == "DATA-STALE"
    )
    # aionut names the command, not its argument, when the login is refused
    assert nut_error(NUTLoginError("Error running: PASSWORD: ERR ACCESS-DENIED")) == "ACCESS-DENIED"
    assert nut_error(ConnectionRefusedError(111, "Connect call failed")) == (
        "[Errno 111] Connect call failed"
    )


async def test_a_driver_still_waiting_is_not_read_as_on_mains(rack: Upsd) -> None:
    """upsd says ups.status "WAIT" until a driver's first reading: no reading is made of it
    (neither "on mains" nor "on battery"); the first real status is read at once."""
    rack.set("rack", ups_status="WAIT")
    await asyncio.to_thread(rack.wait_status, "rack", "WAIT")
    src = source(rack, nut_binding("ups-ob", "ups_on_battery", "rack"))
    collector = Collector(src)
    try:
        await collector.wait_health(lambda h: h["polls"] >= 5)
        assert [r for r in collector.readings if r.kind == "ups_on_battery"] == []
        rack.set("rack", ups_status="OB DISCHRG")
        assert (await collector.wait_for(match("ups-ob", "ups_on_battery"))).value == 1.0
    finally:
        await collector.stop()


async def test_forced_shutdown_a_garbled_value_and_output_off(rack: Upsd) -> None:
    """FSD (upsmon shutting the hosts down now) pages as urgently as LB, charge or not; a
    value that is no number is a sensor fault at once, not silence until max_age; OFF (the
    UPS feeds nothing) reads as ups_output_off."""
    src = source(
        rack,
        nut_binding("ups-lb", "ups_battery_low", "rack"),
        nut_binding("ups-runtime", "ups_runtime", "rack"),
        nut_binding("ups-off", "ups_output_off", "rack"),
    )
    collector = Collector(src)
    try:
        assert (await collector.wait_for(match("ups-lb", "ups_battery_low"))).value is False
        mark = len(collector.readings)
        rack.set("rack", ups_status="OB DISCHRG FSD", battery_runtime="n/a")
        low = await collector.wait_for(match("ups-lb", "ups_battery_low", True), after=mark)
        assert low.fault is None
        fault = await collector.wait_for(
            lambda r: r.sensor_id == "ups-runtime" and r.fault is not None, after=mark
        )
        assert fault.value is None and "battery.runtime" in (fault.fault or ""), fault
        # the UPS switched its output off: the equipment on it is dark, mains or not
        assert (await collector.wait_for(match("ups-off", "ups_output_off"))).value is False
        mark = len(collector.readings)
        rack.set("rack", ups_status="OL OFF", battery_runtime="1800")
        await collector.wait_for(match("ups-off", "ups_output_off", True), after=mark)
    finally:
        await collector.stop()


async def test_two_upses_on_one_upsd_are_read_apart(tmp_path: Path) -> None:
    """One UPS on battery and the other's driver gone: each one's sensors say their own."""
    server = Upsd(tmp_path, ups=("rack", "edge"))
    server.start()
    src = source(
        server,
        nut_binding("rack-ob", "ups_on_battery", "rack"),
        nut_binding("edge-ob", "ups_on_battery", "edge"),
    )
    collector = Collector(src)
    try:
        await collector.wait_for(match("edge-ob", "ups_on_battery", 0.0))
        mark = len(collector.readings)
        server.set("rack", ups_status="OB DISCHRG")
        server.stop_driver("edge")
        await collector.wait_for(match("edge-ob", "availability", False), after=mark)
        on_battery = await collector.wait_for(
            lambda r: r.sensor_id == "rack-ob" and (r.value or 0) >= 2.0, after=mark
        )
        assert on_battery.kind == "ups_on_battery"
        health = src.health()
        assert health["state"] == "connected" and set(health["ups_down"]) == {"edge"}
        assert health["on_battery"] == ["rack"]
        assert not [
            r
            for r in collector.readings[mark:]
            if r.sensor_id == "edge-ob" and r.kind == "ups_on_battery" and r.value
        ]
    finally:
        await collector.stop()
        server.stop()
