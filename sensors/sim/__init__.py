"""Simulated devices that speak the real protocols, for tests, `sentinel simulate` and demos.

- `scenario`: scripted timelines (leak, heat, smoke, silent, offline).
- `publisher`: plays a scenario to a real MQTT broker in Zigbee2MQTT or Tasmota shape.
- `line_device`: a text-line board on a pty that can be unplugged and plugged back.
- `modbus_device`: Modbus RTU devices on a pty, served by pymodbus's own server.
"""

from sensors.sim.publisher import run_scenario
from sensors.sim.scenario import SCENARIOS, Event, build_scenario

__all__ = ["SCENARIOS", "Event", "build_scenario", "run_scenario"]
