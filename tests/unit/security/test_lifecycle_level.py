"""Lifecycle rules act only on what their setter could read (object_labels)."""

from __future__ import annotations

from vallum.security.mac.labels import parse
from vallum.security.mac.object_labels import (
    LIFECYCLE_LEVEL,
    lifecycle_level,
    lifecycle_may_touch,
)

TS, S, U = "TOP SECRET//SI", "SECRET", "UNCLASSIFIED"


def test_setter_level_bounds_what_rules_touch():
    secret = {LIFECYCLE_LEVEL: lifecycle_level(parse(S))}
    assert lifecycle_may_touch(secret, {"label": U})
    assert lifecycle_may_touch(secret, {"label": S})
    assert lifecycle_may_touch(secret, {})                       # unlabelled: the lowest
    assert not lifecycle_may_touch(secret, {"label": TS})


def test_trusted_setter_touches_all_and_unknown_setter_only_the_lowest():
    high = {LIFECYCLE_LEVEL: lifecycle_level(None)}
    assert lifecycle_may_touch(high, {"label": TS})
    assert lifecycle_may_touch({}, {"label": U})                 # rules from before levels
    assert not lifecycle_may_touch({}, {"label": S})
