"""The alarm engine: rules, the life of an alarm, silences, and their state in SQLite."""

from sentinel.alarm.engine import Engine
from sentinel.alarm.schema import MIGRATIONS, OWNER
from sentinel.alarm.status import read_status

__all__ = ["MIGRATIONS", "OWNER", "Engine", "read_status"]
