"""Credentials bound to a session level (iam/clearance.py): issuing and what they carry."""

from __future__ import annotations

import pytest

from vallum.iam import clearance
from vallum.iam.directory import IAMError
from vallum.iam.principal import Principal
from vallum.s3.handlers.labels import cached_subject

TS = "TOP SECRET//SI//NOFORN"
S = "SECRET//NOFORN"


def who(cleared: str | None, root: bool = False) -> Principal:
    return Principal("AKIAX", "111111111111", root, clearance=cleared)


def test_issued_level_is_canonical_and_none_when_not_asked():
    assert clearance.issued_level(who(None, root=True), TS, "secret//nf") == S
    assert clearance.issued_level(who(TS), TS, None) is None
    assert clearance.issued_level(who(TS), TS, "") is None


@pytest.mark.parametrize("minter, holder, level, error", [
    (None, S, TS, IAMError),                       # above the holder's clearance
    (None, None, "SECRET", IAMError),              # an uncleared holder
    (None, TS, "SEKRET", IAMError),                # malformed
    (None, TS, 5, IAMError),                       # not a string
    ("CONFIDENTIAL", TS, S, clearance.ClearanceDenied),   # above the minter's own
], ids=["above-holder", "uncleared-holder", "malformed", "not-a-string", "above-minter"])
def test_issued_level_refusals(minter, holder, level, error):
    caller = who(minter, root=minter is None)
    with pytest.raises(error):
        clearance.issued_level(caller, holder, level)


def test_bound_caps_the_clearance_and_fixes_the_level():
    p = clearance.bound(who(TS), clearance.Bounds(None, S))
    assert (p.clearance, p.session_level, p.level_fixed) == (S, S, True)
    subject = cached_subject(p.clearance, p.session_level, False)
    assert subject.read is not None and subject.read.banner() == S


def test_bound_below_a_lowered_clearance_fails_closed():
    p = clearance.bound(who("CONFIDENTIAL"), clearance.Bounds(None, S))
    with pytest.raises(PermissionError):
        cached_subject(p.clearance, p.session_level, False)


def test_unbound_keeps_the_ceiling_rule():
    assert clearance.bound(who(TS), None).clearance == TS
    assert clearance.bound(who(TS), clearance.Bounds(S, None)).clearance == S
    assert clearance.bound(who(TS), clearance.Bounds(None, None)).clearance == TS
