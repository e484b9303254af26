"""Replica names without a source entry: what a full pass's --delete would remove.

rsync finds them by reading and lstat-ing every replica directory on the receiving side:
on an unchanged 100k-file tree that was a third of the reconcile (issue 18). Comparing the
names of each directory on both sides needs no stat at all (the directory entry says
whether it is a directory), so a local replica is checked here, beside a dry run without
--delete, and the guard's measured dry run with --delete runs only when either found
something.

Conservative by construction: every replica name missing from the source counts, whatever
rsync would have done with it (an excluded or set-aside name, a per-directory partial
directory), so a "nothing" here is never wrong; a "something" only costs the exact dry run.
"""

from __future__ import annotations

import os
from collections.abc import Collection


def first_orphan(source: str, replica: str, protected: Collection[str] = ()) -> str | None:
    """The first replica path (relative) with no entry of that name on the source, or None
    when every replica name has one. `protected`: names at the replica's root that are
    sentinel's own (markers, versions). Raises OSError when a source directory cannot be
    listed: then nothing can be said."""
    stack = [""]
    while stack:
        rel = stack.pop()
        here = os.path.join(source, rel) if rel else source
        with os.scandir(here) as entries:
            names = {e.name: e.is_dir(follow_symlinks=False) for e in entries}
        try:
            there = os.listdir(os.path.join(replica, rel) if rel else replica)
        except (FileNotFoundError, NotADirectoryError):
            continue  # not on the replica yet: the dry run lists it as new
        for name in there:
            if name not in names and not (rel == "" and name in protected):
                return f"{rel}/{name}" if rel else name
        stack.extend(f"{rel}/{name}" if rel else name for name, is_dir in names.items() if is_dir)
    return None
