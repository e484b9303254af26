"""Sensor sources and payload decoders: MQTT, serial text lines, Modbus RTU, simulators.

A leaf package: it never imports `sentinel`. Everything it produces is a `Reading`.
"""

from common.kinds import Kind
from sensors.reading import Reading, SourceHealth

__all__ = ["Kind", "Reading", "SourceHealth"]
