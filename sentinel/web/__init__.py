"""The dashboard and /metrics, served by the daemon itself (aiohttp, in the daemon's loop)."""
