"""Clearance ceilings: who may take on a credential, and what a capped credential carries."""

from __future__ import annotations

from vallum.iam import clearance
from vallum.iam.principal import Principal

TS = "TOP SECRET//SI//NOFORN"
S = "SECRET//NOFORN"


def who(cleared: str | None, root: bool = False) -> Principal:
    return Principal("AKIAX", "111111111111", root, clearance=cleared)


def test_may_take_on_needs_dominance_except_for_root():
    assert not clearance.may_take_on(who(None), TS)
    assert not clearance.may_take_on(who(S), TS)
    assert not clearance.may_take_on(who("TOP SECRET"), TS)       # compartments count too
    assert clearance.may_take_on(who(TS), S)
    assert clearance.may_take_on(who(None), None)
    assert clearance.may_take_on(who(None, root=True), TS)


def test_ceiling_of_root_is_none_and_of_others_their_clearance():
    assert clearance.ceiling_of(who(None, root=True)) is None
    assert clearance.ceiling_of(who(None)) == "UNCLASSIFIED"
    assert clearance.ceiling_of(who(S)) == S


def test_capped_is_the_meet():
    assert clearance.capped(TS, None) == TS
    assert clearance.capped(TS, "UNCLASSIFIED") is None
    assert clearance.capped(S, TS) == S
    assert clearance.capped(TS, "SECRET//SI") == "SECRET//SI"    # lower level, fewer limits
    assert clearance.capped(None, TS) is None


def test_unreadable_clearance_grants_nothing():
    assert clearance.label("NOT A LABEL") == clearance.LOWEST
