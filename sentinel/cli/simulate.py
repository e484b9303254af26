"""`sentinel simulate SCENARIO --broker HOST:PORT`: plays a scripted room to a real broker."""

from __future__ import annotations

import argparse
import asyncio
import sys

from sensors.sim.publisher import FORMATS, run_scenario
from sensors.sim.scenario import SCENARIOS


def _broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, found {text!r}")
    return host, int(port)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, found {text!r}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds this module's subcommands."""
    parser = sub.add_parser(
        "simulate",
        help="play a scripted sensor scenario to an MQTT broker",
        description=(
            "Publishes simulated Zigbee2MQTT or Tasmota devices (leak-ups, climate-rack1, "
            "smoke-ceiling) to a broker. Scenarios: leak (water at --at s), heat "
            "(temperature rising --rate °C/min), smoke, silent (the climate probe stops "
            "reporting), offline (the leak sensor's availability goes offline)."
        ),
    )
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--broker", type=_broker, default=("127.0.0.1", 1883), metavar="HOST:PORT")
    parser.add_argument("--format", choices=FORMATS, default="zigbee2mqtt", dest="fmt")
    parser.add_argument(
        "--speed", type=_positive, default=1.0, help="time factor (10 = 10x faster)"
    )
    parser.add_argument("--at", type=float, default=None, help="when the event starts (seconds)")
    parser.add_argument("--rate", type=float, default=None, help="heat: °C per minute")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    host, port = args.broker
    params: dict[str, float] = {}
    if args.at is not None:
        params["at"] = args.at
    if args.rate is not None:
        if args.scenario != "heat":
            print("sentinel: --rate only applies to the heat scenario", file=sys.stderr)
            return 2
        params["rate"] = args.rate
    try:
        asyncio.run(
            run_scenario(args.scenario, host, port, speed=args.speed, fmt=args.fmt, **params)
        )
    except OSError as exc:
        print(f"sentinel: cannot reach broker {host}:{port}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if type(exc).__name__ == "MqttError":
            print(f"sentinel: broker {host}:{port}: {exc}", file=sys.stderr)
            return 1
        raise
    return 0
