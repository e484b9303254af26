"""SMS through a cellular modem: PDU encoding (pdu.py), the AT dialogue (at.py) and the
`modem://` Apprise plugin (plugin.py). See docs/modem.md."""
