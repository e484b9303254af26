"""A text-line serial board on a pty, reachable through a stable symlink like /dev/serial/by-id.

`unplug()` closes the device end and removes the link (what a USB unplug does to the port);
`plug()` makes a new pty behind the same link.
"""

from __future__ import annotations

import contextlib
import os
import tty
from pathlib import Path


class PtyLineDevice:
    """The device side of a serial line: write lines, unplug, plug back in."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self._master: int | None = None
        self._slave: int | None = None

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        if self._master is not None:
            return
        master, slave = os.openpty()
        # Raw from the start: otherwise the tty echoes lines back before the reader opens it.
        tty.setraw(slave)
        self._master, self._slave = master, slave
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)

    def unplug(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def write(self, data: bytes) -> None:
        if self._master is None:
            raise RuntimeError("device is unplugged")
        view = memoryview(data)
        while view:
            written = os.write(self._master, view)
            view = view[written:]

    def write_line(self, line: str) -> None:
        self.write(line.encode() + b"\n")

    def close(self) -> None:
        self.unplug()
