"""Test modules share helpers through tests/support only: a test module that imports another
test module runs (and couples to) that module's fixtures and setup."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# A contract suite meant to be re-run against another implementation.
CONTRACTS = {"tests.unit.storage.test_blobstore_contract"}
# Ratchet: imports still to move into tests/support (never add to it).
KNOWN: set[tuple[str, str]] = set()


def _is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return name.startswith("tests.") and (last.startswith("test_") or last == "conftest")


def cross_imports() -> set[tuple[str, str]]:
    found = set()
    for path in TESTS.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if _is_test_module(name) and name not in CONTRACTS:
                    found.add((str(path.relative_to(TESTS.parent)), name))
    return found


def test_no_test_module_imports_another():
    found = cross_imports()
    assert found - KNOWN == set(), "move shared helpers into tests/support"
    assert KNOWN - found == set(), "fixed: remove from KNOWN"
