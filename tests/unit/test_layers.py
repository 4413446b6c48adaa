"""Layers import only downward (docs/architecture.md, "Layers"): a ratchet.

Every module is given the layer of the longest prefix in LAYERS. An import from a lower
layer to a higher one is a violation. Today's violations are listed in KNOWN_UPWARD; the
test fails on any new one, and on a listed one that is gone (so the list only shrinks).
Package cycles are checked the same way against KNOWN_CYCLES.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2] / "vallum"

# Longest prefix wins. Lower number = lower layer.
LAYERS: dict[str, int] = {
    # protocol: pure parsing and formatting, no I/O
    "vallum.s3": 0,
    "vallum.batching": 0,
    "vallum.http": 0,                 # Request/Response: the types every API handler sees
    # stores
    "vallum.sqlite_open": 1,
    "vallum.meta": 1,
    "vallum.storage": 1,
    "vallum.client": 1,
    "vallum.metrics": 1,
    # domain
    "vallum.security": 2,
    "vallum.iam": 2,
    "vallum.authz": 2,
    # services
    "vallum.service": 3,
    "vallum.compute": 3,
    "vallum.operator": 3,
    "vallum.ops": 3,
    # api: handlers and the request frame
    "vallum.s3.handlers": 4,
    "vallum.s3.handlers.labels": 4,   # MAC of a request: used by the gate and the handlers
    "vallum.s3.handlers.visibility": 4,   # what a MAC-restricted caller sees: gate and handlers
    "vallum.iam.gate": 4,
    "vallum.iam.sts_api": 4,
    "vallum.iam.sts_cert": 4,         # STS AssumeRoleWithCertificate (uses sts_api)
    "vallum.compute.api": 4,
    "vallum.security.audit.request_record": 4,
    "vallum.operator.gateway": 4,     # the operator's hook in the request frame
    # entry
    "vallum.server": 5,
    "vallum.cli": 5,
    "vallum.__main__": 5,
    "vallum": 5,
}

# (importer, imported) pairs that point upward today. Remove a line when you fix it.
KNOWN_UPWARD: set[tuple[str, str]] = set()

# Cycles between units today (sorted tuples of LAYERS prefixes).
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def layer_of(module: str) -> int:
    return LAYERS[unit(module)]


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    base = ROOT.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports() -> dict[str, set[str]]:
    """Module -> vallum modules it imports at run time (TYPE_CHECKING blocks excluded)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        targets: set[str] = set()
        skip: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(n) for b in node.body for n in ast.walk(b))
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] == "vallum":
                for alias in node.names:     # `from vallum.s3 import errors` imports a module
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if is_module(sub) else node.module)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == "vallum")
        graph[module_name(path)] = targets
    return graph


def upward(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(a, b) for a, bs in graph.items() for b in bs if layer_of(b) > layer_of(a)}


def unit(module: str) -> str:
    """The LAYERS entry a module belongs to (its longest prefix): the unit cycles are found on."""
    best = ""
    for prefix in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return best


def package_cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Strongly connected sets of units (Tarjan), size > 1."""
    edges: dict[str, set[str]] = {}
    for a, bs in graph.items():
        pa = unit(a)
        for b in bs:
            pb = unit(b)
            if pb != pa:
                edges.setdefault(pa, set()).add(pb)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: set[tuple[str, ...]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.add(tuple(sorted(comp)))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def test_layering_sees_modules():
    graph = imports()
    assert "vallum.server.app" in graph and "vallum.s3.sigv4" in graph
    assert ("vallum.s3.handlers.objects", "vallum.cli.main") in upward(
        {"vallum.s3.handlers.objects": {"vallum.cli.main"}})


def test_no_new_upward_imports():
    found = upward(imports())
    new = sorted(found - KNOWN_UPWARD)
    assert not new, "imports that point up a layer (see docs/architecture.md):\n" + \
        "\n".join(f"  {a} -> {b}" for a, b in new)


def test_fixed_upward_imports_leave_the_list():
    gone = sorted(KNOWN_UPWARD - upward(imports()))
    assert not gone, "fixed: delete these from KNOWN_UPWARD:\n" + \
        "\n".join(f"  {a} -> {b}" for a, b in gone)


def test_no_new_package_cycles():
    found = package_cycles(imports())
    assert found <= KNOWN_CYCLES, f"new package cycles: {sorted(found - KNOWN_CYCLES)}"
    assert KNOWN_CYCLES <= found, f"fixed: delete from KNOWN_CYCLES: {sorted(KNOWN_CYCLES - found)}"
