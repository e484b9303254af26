"""The `sentinel` command: a thin layer over config, store and daemon."""
