"""A broken or hostile `sentinel receive`, for the sender's tests: it answers hello, then
misbehaves as argv[1] says. (A real receiver cannot be made to do this.)"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from backup.stream_frames import encode, read_header


def main(mode: str) -> None:
    r, w = sys.stdin.buffer, sys.stdout.buffer
    read_header(r)
    if mode == "mute":
        time.sleep(3600)
    w.write(encode({"op": "hello", "version": 1}))
    w.flush()
    while (batch := read_header(r)) is not None:
        sent = []
        while (entry := read_header(r)) is not None and entry["op"] != "end":
            sent.append(entry["path"])
            if entry["op"] == "file":
                r.read(entry["size"])
        reply = {"op": "done", "done": sent, "rest": [], "output": [], "seq": batch.get("seq")}
        if mode == "unhashable":
            reply["done"] = [["x"]]
        elif mode == "not-sent":
            reply["done"] = [*sent, "never-sent.txt"]
        elif mode == "stderr-trickle":
            while True:
                sys.stderr.write("still thinking...\n")
                sys.stderr.flush()
                time.sleep(0.3)
        elif mode == "stderr-closed":
            os.close(2)
            time.sleep(3600)
        elif mode == "refuses":
            reply["done"], reply["refused"] = [], "no .sentinel-target in the replica root"
        elif mode == "double-reply":
            w.write(encode(reply))
        w.write(encode(reply))
        w.flush()


if __name__ == "__main__":
    main(sys.argv[1])
