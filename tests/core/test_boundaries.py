"""The leaf packages stand alone: none imports `sentinel`, and none imports another leaf.
All of them may import `common`, which imports none of them and does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
LEAVES = ("sensors", "alerts", "backup")
SHARED = "common"
# What `common` may import at run time: the standard library's pure modules, by full name
# (so `urllib.parse` is allowed and `urllib.request` is not). Anything that reaches a file,
# a socket, a process or the event loop (os, pathlib, socket, sqlite3, aiosqlite, asyncio,
# subprocess, ...) is left out on purpose; typing-only imports under TYPE_CHECKING are fine.
COMMON_MAY_IMPORT = frozenset(
    {
        "__future__",
        "collections",
        "collections.abc",
        "contextlib",
        "dataclasses",
        "enum",
        "functools",
        "re",
        "threading",
        "typing",
        "urllib.parse",
    }
)


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path) -> set[str]:
    """Full names of the modules `path` imports when it runs (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def calls_open(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open"
        for node in ast.walk(tree)
    )


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaf_does_not_import_sentinel_or_other_leaves(leaf: str) -> None:
    forbidden = {"sentinel", *LEAVES} - {leaf}
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & forbidden)
        for path in (ROOT / leaf).rglob("*.py")
        if imported_packages(path) & forbidden
    }
    assert offenders == {}


def test_the_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from sentinel.config import Config\nimport alerts.event\n")
    assert imported_packages(bad) == {"sentinel", "alerts"}


def test_common_imports_no_package_of_ours_and_nothing_that_does_io() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name
            for name in runtime_imports(path)
            # a relative import stays inside common
            if name not in COMMON_MAY_IMPORT and not name.startswith((f"{SHARED}.", "."))
        )
        for path in (ROOT / SHARED).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}
    assert [p.name for p in (ROOT / SHARED).rglob("*.py") if calls_open(p)] == []


def test_the_common_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from typing import TYPE_CHECKING\n"
        "import os.path\nfrom sensors.reading import Reading\nfrom . import sibling\n"
        "if TYPE_CHECKING:\n    import aiosqlite\nelse:\n    import sqlite3\n"
        "def f():\n    import asyncio\n    return open('x')\n"
    )
    assert runtime_imports(bad) == {
        "typing",
        "os.path",
        "sensors.reading",
        ".",
        "sqlite3",
        "asyncio",
    }
    assert calls_open(bad)
