"""Alert delivery: durable outbox, routing by severity, Apprise channels, message templates.

A leaf package: it never imports `sentinel`. The daemon hands it `AlarmEvent`s inside the
same SQLite transaction that records the alarm's transition.
"""

from alerts.event import AlarmEvent

__all__ = ["AlarmEvent"]
