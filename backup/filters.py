"""Include/exclude patterns of a source, for the watcher and for rsync (filters).

A pattern without "/" matches a file or directory name at any depth (`*.tmp`); a pattern
with "/" (or "**") matches the whole path relative to the source root (`cache/*`). An
excluded directory excludes everything below it. When include patterns are given, only
files that match one of them are replicated (directories are always walked).

The watcher must decide as rsync does, or a change it ignores waits for the next full pass:
wildcards follow rsync's rules, not fnmatch's (`*` and `?` stop at "/", `**` does not), so
`a/*.tmp` leaves `a/b/x.tmp` replicated on both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Filters:
    """The include/exclude patterns of one source."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """False when there are no patterns: nothing is excluded."""
        return bool(self.include or self.exclude)

    def excluded(self, rel: str, *, is_dir: bool = False) -> bool:
        """True when `rel` (relative to the source root) must not be replicated."""
        parts = rel.split("/")
        for i in range(len(parts)):
            prefix = "/".join(parts[: i + 1])
            if any(_match(p, prefix, parts[i]) for p in self.exclude):
                return True
        if is_dir or not self.include:
            return False
        return not any(_match(p, rel, parts[-1]) for p in self.include)

    def rsync_args(self) -> list[str]:
        args = [f"--exclude={_anchor(p)}" for p in self.exclude]
        if self.include:
            args.append("--include=*/")
            args += [f"--include={_anchor(p)}" for p in self.include]
            args.append("--exclude=*")
        return args


def _match(pattern: str, rel: str, name: str) -> bool:
    if "/" in pattern or "**" in pattern:
        return _compiled(pattern.strip("/")).match(rel) is not None
    return _compiled(pattern).match(name) is not None


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    """rsync's wildcards as a regular expression: `*` and `?` within one path part, `**`
    across parts, `[...]` a class (`[!...]` negated), a backslash quotes the next character."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        elif c == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _anchor(pattern: str) -> str:
    # rsync matches an unanchored path pattern against any tail of the path; ours are whole
    # paths from the source root, as the watcher matches them
    return "/" + pattern.strip("/") if "/" in pattern or "**" in pattern else pattern
