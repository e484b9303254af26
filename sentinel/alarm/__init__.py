"""The alarm engine: rules, the life of an alarm, silences, and their state in SQLite.

Import from the modules (`sentinel.alarm.engine.Engine`): this package imports none of
them, so that `sentinel.migrations` (which needs only the schema) does not load the engine
and with it pydantic and the whole config (~0.4 s of every replication start, issue 18).
"""
