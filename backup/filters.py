"""Include/exclude patterns of a source, for the watcher (fnmatch) and for rsync (filters).

A pattern without "/" matches a file or directory name at any depth (`*.tmp`); a pattern
with "/" matches the whole path relative to the source root (`cache/*`). An excluded
directory excludes everything below it. When include patterns are given, only files that
match one of them are replicated (directories are always walked).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


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
    if "/" in pattern:
        return fnmatchcase(rel, pattern.strip("/"))
    return fnmatchcase(name, pattern)


def _anchor(pattern: str) -> str:
    return "/" + pattern.strip("/") if "/" in pattern else pattern
