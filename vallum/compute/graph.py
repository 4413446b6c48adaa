"""Dependency graphs of jobs submitted together: refuse cycles before anything is stored."""

from __future__ import annotations


class CycleError(ValueError):
    def __init__(self, cycle: list[str]) -> None:
        super().__init__("cyclic dependency: " + " -> ".join(cycle))
        self.cycle = cycle


def topo_order(edges: dict[str, list[str]]) -> list[str]:
    """Nodes so that each comes after everything it depends on (edges: node -> its deps
    among the nodes; other names are ignored). Raises CycleError naming one cycle."""
    order: list[str] = []
    state: dict[str, int] = {}          # 1 = on the current path, 2 = done
    for root in edges:
        if state.get(root) == 2:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            deps = [d for d in edges.get(node, ()) if d in edges]
            if i < len(deps):
                stack.append((node, i + 1))
                nxt = deps[i]
                if state.get(nxt) == 1:
                    raise CycleError(path[path.index(nxt):] + [nxt])
                if state.get(nxt) != 2:
                    stack.append((nxt, 0))
                continue
            state[node] = 2
            path.pop()
            order.append(node)
    return order
