"""Replication: inotify watcher, change journal, rsync shipper, reconcile, verify, restore.

A leaf package: it never imports `sentinel`.
"""
