import pytest
from hypothesis import given
from hypothesis import strategies as st

from vallum.compute.graph import CycleError, topo_order


def test_orders_dependencies_first():
    order = topo_order({"c": ["a", "b"], "b": ["a"], "a": []})
    assert order.index("a") < order.index("b") < order.index("c")


def test_ignores_external_names():
    assert topo_order({"a": ["j-existing"]}) == ["a"]


@pytest.mark.parametrize("edges", [{"a": ["a"]}, {"a": ["b"], "b": ["a"]},
                                   {"a": ["b"], "b": ["c"], "c": ["a"], "d": []}])
def test_refuses_cycles(edges):
    with pytest.raises(CycleError) as exc:
        topo_order(edges)
    cycle = exc.value.cycle
    assert cycle[0] == cycle[-1]
    for a, b in zip(cycle, cycle[1:]):
        assert b in edges[a]


@given(st.dictionaries(st.integers(0, 8), st.lists(st.integers(0, 8), max_size=3), max_size=9))
def test_acyclic_iff_order_exists(raw):
    edges = {str(k): [str(d) for d in v] for k, v in raw.items()}
    # Only edges from higher to lower numbers can never form a cycle.
    dag = {k: [d for d in v if int(d) < int(k)] for k, v in edges.items()}
    order = topo_order(dag)
    pos = {n: i for i, n in enumerate(order)}
    assert sorted(order) == sorted(dag)
    for k, v in dag.items():
        for d in v:
            if d in dag:
                assert pos[d] < pos[k]
