"""The object-lock decision table (vallum.storage.retention), exhaustively."""

from __future__ import annotations

import itertools

import pytest

from vallum.storage.retention import (
    COMPLIANCE,
    GOVERNANCE,
    Lock,
    lock_of,
    store_retention,
    why_not_change,
    why_not_remove,
)

NOW = 1_000_000.0


@pytest.mark.parametrize("mode, expired, asked, permitted, hold",
                         list(itertools.product([None, GOVERNANCE, COMPLIANCE], [False, True], [False, True],
                                                [False, True], [False, True])))
def test_remove_matrix(mode, expired, asked, permitted, hold):
    until = NOW - 1 if expired else NOW + 100
    lock = Lock(mode, until if mode else None, hold)
    refused = why_not_remove(lock, NOW, bypass_requested=asked, may_bypass=permitted) is not None
    if hold:
        expected = True
    elif mode is None or expired:
        expected = False
    elif mode == COMPLIANCE:
        expected = True
    else:
        expected = not (asked and permitted)
    assert refused == expected


def test_retention_expires_exactly_at_until():
    lock = Lock(COMPLIANCE, NOW, False)
    assert why_not_remove(lock, NOW - 0.001, bypass_requested=True, may_bypass=True) is not None
    assert why_not_remove(lock, NOW, bypass_requested=False, may_bypass=False) is None


@pytest.mark.parametrize("current, new_mode, new_until, asked, ok", [
    (Lock(COMPLIANCE, NOW + 10), COMPLIANCE, NOW + 20, False, True),     # extend
    (Lock(COMPLIANCE, NOW + 10), COMPLIANCE, NOW + 10, False, True),     # same
    (Lock(COMPLIANCE, NOW + 10), COMPLIANCE, NOW + 5, True, False),      # shorten: never
    (Lock(COMPLIANCE, NOW + 10), GOVERNANCE, NOW + 50, True, False),     # weaker mode: never
    (Lock(COMPLIANCE, NOW + 10), None, None, True, False),               # remove: never
    (Lock(COMPLIANCE, NOW - 10), GOVERNANCE, NOW + 5, False, True),      # expired: anything
    (Lock(GOVERNANCE, NOW + 10), GOVERNANCE, NOW + 20, False, True),
    (Lock(GOVERNANCE, NOW + 10), COMPLIANCE, NOW + 20, False, True),     # stricter mode
    (Lock(GOVERNANCE, NOW + 10), GOVERNANCE, NOW + 5, False, False),
    (Lock(GOVERNANCE, NOW + 10), GOVERNANCE, NOW + 5, True, True),       # with the bypass
    (Lock(GOVERNANCE, NOW + 10), None, None, True, True),
    (Lock(), COMPLIANCE, NOW + 5, False, True),
])
def test_change(current, new_mode, new_until, asked, ok):
    refusal = why_not_change(current, new_mode, new_until, NOW, bypass_requested=asked, may_bypass=True)
    assert (refusal is None) == ok


def test_bypass_without_permission_is_refused():
    lock = Lock(GOVERNANCE, NOW + 10)
    assert why_not_remove(lock, NOW, bypass_requested=True, may_bypass=False) is not None
    assert why_not_change(lock, None, None, NOW, bypass_requested=True, may_bypass=False) is not None


def test_store_and_read_back():
    extra: dict = {}
    store_retention(extra, GOVERNANCE, NOW)
    extra["legal_hold"] = True
    assert lock_of(extra) == Lock(GOVERNANCE, NOW, True)
    store_retention(extra, None, None)
    assert lock_of(extra) == Lock(None, None, True)
    assert lock_of({"retention": {"mode": "BOGUS", "until": 1}}).mode is None
