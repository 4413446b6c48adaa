"""MAC decisions: a request matrix over levels x compartments x operations."""

from __future__ import annotations

import itertools

import pytest

from vallum.security.mac.labels import parse
from vallum.security.mac.rules import (
    LabelRange,
    check_read,
    check_spill,
    check_write,
    session_level,
)

LEVELS = ["UNCLASSIFIED", "CUI", "CONFIDENTIAL", "SECRET", "TOP SECRET"]
COMPS = [(), ("SI",), ("SI", "TK")]


def lab(level, comps=()):
    return parse(level + ("//" + "/".join(comps) if comps else ""))


@pytest.mark.parametrize("cl, cc, ol, oc", list(itertools.product(range(5), range(3), range(5), range(3))))
def test_read_matrix(cl, cc, ol, oc):
    clearance, label = lab(LEVELS[cl], COMPS[cc]), lab(LEVELS[ol], COMPS[oc])
    expected = cl >= ol and set(COMPS[cc]) >= set(COMPS[oc])
    assert check_read(clearance, label).allowed is expected


@pytest.mark.parametrize("sl, ol", list(itertools.product(range(5), range(5))))
def test_write_matrix_no_write_down(sl, ol):
    rng = LabelRange(lab("CUI"), lab("SECRET", ("SI",)))
    session, label = lab(LEVELS[sl]), lab(LEVELS[ol])
    expected = ol >= sl and 1 <= ol <= 3
    assert check_write(session, label, rng).allowed is expected


def test_range_and_session_and_spill():
    with pytest.raises(ValueError):
        LabelRange(lab("SECRET"), lab("CONFIDENTIAL"))
    rng = LabelRange(lab("UNCLASSIFIED"), lab("SECRET"))
    assert not check_write(lab("UNCLASSIFIED"), lab("SECRET", ("SI",)), rng).allowed   # compartment above ceiling
    assert session_level(lab("TOP SECRET", ("SI",)), lab("SECRET")) == lab("SECRET")
    with pytest.raises(PermissionError):
        session_level(lab("SECRET"), lab("TOP SECRET"))
    assert check_spill(None, lab("UNCLASSIFIED"), rng).allowed
    assert not check_spill(lab("SECRET"), lab("CONFIDENTIAL"), rng).allowed
    assert not check_spill(lab("TOP SECRET"), lab("TOP SECRET"), rng).allowed     # above the ceiling
    assert check_spill(parse("S//NF"), parse("SECRET//NOFORN"), None).allowed
