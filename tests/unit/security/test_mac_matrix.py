"""The MAC request matrix: levels x compartments x operations, through authz.decide.

Expected answers are computed here from ranks and compartment sets directly (not with
Label.dominates), so a wrong dominance or a wrong rule in decide_labels shows up; a few
rows are also spelled out by hand. Every case runs for an IAM-allowed user and for the
platform root: no policy and no root overrides a MAC denial.
"""

from __future__ import annotations

import itertools

import pytest

from vallum import authz
from vallum.iam.identity import parsed
from vallum.iam.principal import Principal
from vallum.security.mac.labels import Label, parse
from vallum.security.mac.rules import LabelRange, subject_for

LEVELS = ["UNCLASSIFIED", "CUI", "CONFIDENTIAL", "SECRET", "TOP SECRET"]
COMPARTMENTS = [frozenset(), frozenset({"SI"}), frozenset({"TK"}), frozenset({"SI", "TK"})]
OPERATIONS = ["read", "write", "write-in-range"]
RANGE = LabelRange(parse("CONFIDENTIAL"), parse("TOP SECRET//SI"))
LOWEST = Label(0)

ALLOW_ALL = parsed('{"Version": "2012-10-17", "Statement": '
                   '[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}')
USER = Principal("AKIAUSER", "111111111111", user="u", arn="arn:aws:iam::111111111111:user/u",
                 policies=(("user/u/inline/all", ALLOW_ALL),))
ROOT = Principal("ROOTKEY", "000000000000", is_root=True)


def label(rank: int, comps: frozenset[str]) -> Label:
    return Label(rank, comps)


def expected(op: str, session: tuple[int, frozenset], obj: tuple[int, frozenset]) -> bool:
    (s_rank, s_comps), (o_rank, o_comps) = session, obj
    if op == "read":               # no read up
        return s_rank >= o_rank and o_comps <= s_comps
    up = o_rank >= s_rank and s_comps <= o_comps     # no write down
    if op == "write":
        return up
    in_range = o_rank >= 2 and o_comps <= {"SI"}      # [CONFIDENTIAL, TOP SECRET//SI]
    return up and in_range


def check(op: str, session: Label, obj: Label) -> authz.LabelCheck:
    who = subject_for(session, None, trusted=False, floor=LOWEST)
    if op == "read":
        return authz.LabelCheck(who, read=obj)
    return authz.LabelCheck(who, write=obj, bucket_range=RANGE if op == "write-in-range" else None)


CASES = list(itertools.product(OPERATIONS, itertools.product(range(5), COMPARTMENTS),
                               itertools.product(range(5), COMPARTMENTS)))


@pytest.mark.parametrize("principal", [USER, ROOT], ids=["iam-allowed-user", "root"])
def test_matrix(principal):
    mismatches = []
    for op, session, obj in CASES:
        ctx = authz.Context(labels=check(op, label(*session), label(*obj)))
        got = authz.decide(principal, "s3:GetObject" if op == "read" else "s3:PutObject",
                           "arn:aws:s3:::b/k", ctx).allowed
        if got != expected(op, session, obj):
            mismatches.append((op, session, obj, got))
    assert not mismatches, mismatches[:10]
    assert len(CASES) == 3 * 20 * 20


@pytest.mark.parametrize("op,session,obj,allowed", [
    ("read", "SECRET//SI", "CONFIDENTIAL", True),
    ("read", "SECRET//SI", "SECRET//SI/TK", False),          # missing compartment
    ("read", "SECRET", "TOP SECRET", False),                 # read up
    ("read", "TOP SECRET//NOFORN", "SECRET//REL TO USA, GBR", True),
    ("read", "TOP SECRET//REL TO USA, GBR", "SECRET//NOFORN", False),   # release set too wide
    ("write", "SECRET", "CONFIDENTIAL", False),              # write down
    ("write", "SECRET", "SECRET//TK", True),
    ("write", "SECRET//SI", "TOP SECRET", False),            # loses the compartment: a write down
    ("write-in-range", "CONFIDENTIAL", "TOP SECRET//TK", False),   # above the ceiling
    ("write-in-range", "UNCLASSIFIED", "CUI", False),        # below the floor
    ("write-in-range", "UNCLASSIFIED", "TOP SECRET//SI", True),
])
def test_spelled_out_rows(op, session, obj, allowed):
    ctx = authz.Context(labels=check(op, parse(session), parse(obj)))
    for principal in (USER, ROOT):
        decision = authz.decide(principal, "s3:GetObject", "arn:aws:s3:::b/k", ctx)
        assert decision.allowed is allowed
        if not allowed:
            assert decision.reason.startswith("mac: ") and decision.policy == "mac"


def test_iam_still_decides_after_mac_allows():
    nobody = Principal("AKIANONE", "111111111111", user="n", arn="arn:aws:iam::111111111111:user/n")
    ctx = authz.Context(labels=check("read", parse("SECRET"), parse("CONFIDENTIAL")))
    assert not authz.decide(nobody, "s3:GetObject", "arn:aws:s3:::b/k", ctx).allowed
    assert authz.decide(USER, "s3:GetObject", "arn:aws:s3:::b/k", ctx).allowed


def test_session_levels():
    clearance = parse("TOP SECRET//SI")
    low = subject_for(clearance, parse("SECRET"), trusted=False, floor=LOWEST)
    assert low.can_read(parse("SECRET")) and not low.can_read(parse("TOP SECRET"))
    assert low.write == parse("SECRET")
    with pytest.raises(PermissionError):
        subject_for(clearance, parse("TOP SECRET//TK"), trusted=False, floor=LOWEST)
    # The platform root is a trusted subject: system high reads, no write-down rule
    # unless it picks a session level.
    root = subject_for(None, None, trusted=True, floor=LOWEST)
    assert root.can_read(parse("TOP SECRET//SI/TK//NOFORN")) and root.write == LOWEST
    capped = subject_for(parse("SECRET"), None, trusted=True, floor=LOWEST)
    assert not capped.can_read(parse("TOP SECRET"))
