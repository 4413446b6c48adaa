"""Labels: partial-order and lattice laws (hypothesis), parsing and printing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vallum.security.mac.labels import (
    DEFAULT_SCHEME,
    Label,
    LabelError,
    LevelScheme,
    lowest,
    lub,
    parse,
)

COMPARTMENTS = ["SI", "TK", "HCS", "SI-G", "G"]
COUNTRIES = ["GBR", "CAN", "AUS", "NZL", "FVEY"]


@st.composite
def labels(draw) -> Label:
    rank = draw(st.integers(0, len(DEFAULT_SCHEME.levels) - 1))
    comps = draw(st.frozensets(st.sampled_from(COMPARTMENTS)))
    controls = draw(st.frozensets(st.sampled_from(["ORCON", "PROPIN", "IMCON"])))
    release = draw(st.one_of(st.none(), st.frozensets(st.sampled_from(COUNTRIES)).map(lambda s: s | {"USA"})))
    return Label(rank, comps, controls, release)


@given(labels())
def test_reflexive(a):
    assert a.dominates(a)


@given(labels(), labels())
def test_antisymmetric(a, b):
    if a.dominates(b) and b.dominates(a):
        assert a == b


@given(labels(), labels(), labels())
def test_transitive(a, b, c):
    if a.dominates(b) and b.dominates(c):
        assert a.dominates(c)


@given(labels(), labels(), labels())
def test_join_is_least_upper_bound(a, b, c):
    j = a.join(b)
    assert j.dominates(a) and j.dominates(b)
    if c.dominates(a) and c.dominates(b):
        assert c.dominates(j)


@given(labels(), labels(), labels())
def test_meet_is_greatest_lower_bound(a, b, c):
    m = a.meet(b)
    assert a.dominates(m) and b.dominates(m)
    if a.dominates(c) and b.dominates(c):
        assert m.dominates(c)


@given(labels(), labels(), labels())
def test_join_commutative_associative_idempotent(a, b, c):
    assert a.join(b) == b.join(a)
    assert a.join(b).join(c) == a.join(b.join(c))
    assert a.join(a) == a
    assert a.join(a.meet(b)) == a          # absorption


@given(labels())
def test_lowest_is_bottom(a):
    assert a.dominates(lowest())
    assert lub([]) == lowest()
    assert lub([a]) == a


@given(labels())
def test_banner_and_portion_round_trip(a):
    assert parse(a.banner()) == a
    assert parse(a.portion()) == a
    assert parse(a.banner().lower()) == a


@pytest.mark.parametrize("text, banner", [
    ("SECRET//SI/TK//NOFORN", "SECRET//SI/TK//NOFORN"),
    ("TOP SECRET//SI//REL TO USA, GBR", "TOP SECRET//SI//REL TO USA, GBR"),
    ("top secret//si//rel to usa,gbr", "TOP SECRET//SI//REL TO USA, GBR"),
    ("(S//NF)", "SECRET//NOFORN"),
    ("(TS//SI)", "TOP SECRET//SI"),
    ("(C)", "CONFIDENTIAL"),
    ("(U)", "UNCLASSIFIED"),
    ("CUI", "CUI"),
    ("SECRET//TK/SI//REL TO USA, CAN, GBR/ORCON", "SECRET//SI/TK//ORCON/REL TO USA, CAN, GBR"),
    ("SECRET//NOFORN/REL TO USA, GBR", "SECRET//NOFORN"),
])
def test_parse_examples(text, banner):
    assert parse(text).banner() == banner


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("SEKRET", "unknown classification level"),
    ("SECRET//", "empty segment"),
    ("SECRET//SI//NOFORN//TK", "unexpected segment"),
    ("SECRET//NOFORN//ORCON", "more than one dissemination"),
    ("SECRET//REL TO GBR", "must include USA"),
    ("SECRET//REL TO USA, G1", "country codes"),
    ("SECRET//SI/NF", "dissemination control"),
    ("SECRET//S!", "invalid compartment"),
    ("SECRET//SI//", "empty segment"),
])
def test_malformed_labels_name_the_problem(text, fragment):
    with pytest.raises(LabelError, match=fragment):
        parse(text)


def test_dominance_examples():
    ts_si = parse("TOP SECRET//SI")
    s = parse("SECRET")
    s_tk = parse("SECRET//TK")
    nf = parse("SECRET//NOFORN")
    rel = parse("SECRET//REL TO USA, GBR")
    assert ts_si.dominates(s) and not s.dominates(ts_si)
    assert not ts_si.dominates(s_tk) and not s_tk.dominates(ts_si)    # incomparable
    assert ts_si.join(s_tk) == parse("TOP SECRET//SI/TK")
    assert nf.dominates(rel) and rel.dominates(s) and not rel.dominates(nf)
    assert rel.join(nf) == nf
    assert Label.of("SECRET", noforn=True) == nf
    assert Label.of("SECRET", rel_to=["GBR"]) == rel
    assert nf.noforn and nf.level == "SECRET"


def test_configurable_scheme():
    scheme = LevelScheme(levels=(("PUBLIC", "P"), ("INTERNAL", "I"), ("RESTRICTED", "R")))
    r = parse("RESTRICTED//PROJ-X", scheme)
    assert r.dominates(parse("(I)", scheme))
    assert r.portion() == "(R//PROJ-X)"
    with pytest.raises(LabelError):
        parse("SECRET", scheme)
    assert lowest(scheme).level == "PUBLIC"
