"""sentinel: the daemon. Composition root wiring sensors, alarms, alerts and backup together."""

__version__ = "0.1.0"
