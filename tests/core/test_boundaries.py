"""The leaf packages stand alone: none imports `sentinel`, and none imports another leaf."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
LEAVES = ("sensors", "alerts", "backup")


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


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
