"""Continuous change-streaming replication: inotify watcher -> SQLite change journal ->
rsync shipper, with full reconcile, checksum verify, point-in-time restore from the kept
versions, and a ransomware guard. A leaf package: never imports `sentinel`."""
