"""Lifecycle rule parsing, filter matching and due-time planning (no server)."""

from __future__ import annotations

import pytest

from vallum.meta.records import ObjectRecord
from vallum.s3 import errors
from vallum.service.lifecycle_rules import (
    DAY,
    Filter,
    Rule,
    due,
    parse_lifecycle,
    plan_key,
    upload_due,
)

T0 = 1_700_000_000.0 - (1_700_000_000.0 % DAY) + 3600     # 01:00 UTC on some day


def doc(*rules: str) -> bytes:
    return ("<LifecycleConfiguration>" + "".join(f"<Rule>{r}</Rule>" for r in rules)
            + "</LifecycleConfiguration>").encode()


def rec(key: str, vid: str, t: float, *, marker: bool = False, tags=None, size: int = 10,
        latest: bool = False) -> ObjectRecord:
    return ObjectRecord(bucket="b", key=key, version_id=vid, last_modified=t, delete_marker=marker,
                        size=size, is_latest=latest, extra={"tags": tags} if tags else {})


def test_due_rounds_up_to_midnight_utc():
    assert due(T0, 1) == T0 - 3600 + 2 * DAY
    assert due(T0 - 3600, 1) == T0 - 3600 + DAY          # already midnight: stays


def test_filter_matching():
    f = Filter(prefix="logs/", tags=(("a", "1"),), size_gt=5, size_lt=100)
    assert f.matches("logs/x", {"a": "1", "b": "2"}, 50)
    assert not f.matches("data/x", {"a": "1"}, 50)
    assert not f.matches("logs/x", {"a": "2"}, 50)
    assert not f.matches("logs/x", {"a": "1"}, 5)
    assert not f.matches("logs/x", {"a": "1"}, 100)


def test_parse_and_filter_forms():
    rules = parse_lifecycle(doc(
        "<ID>a</ID><Status>Enabled</Status><Filter><And><Prefix>p/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag>"
        "<ObjectSizeGreaterThan>1</ObjectSizeGreaterThan></And></Filter><Expiration><Days>3</Days></Expiration>",
        "<ID>b</ID><Status>Disabled</Status><Prefix>old/</Prefix>"
        "<NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays><NewerNoncurrentVersions>1"
        "</NewerNoncurrentVersions></NoncurrentVersionExpiration>",
        "<Status>Enabled</Status><Filter/><Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration>"))
    assert rules[0].filter == Filter("p/", (("k", "v"),), 1, None) and rules[0].expiration_days == 3
    assert rules[1].filter.prefix == "old/" and not rules[1].enabled and rules[1].newer_noncurrent_versions == 1
    assert rules[2].expiration_date == 1893456000.0


@pytest.mark.parametrize("body, error", [
    ("<Status>Enabled</Status><Filter/><Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z</Date></Expiration>",
     errors.MalformedXML),
    ("<Status>Enabled</Status><Expiration><Days>1</Days></Expiration>", errors.MalformedXML),      # no filter
    ("<Status>Enabled</Status><Filter><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter>"
     "<Expiration><Days>1</Days></Expiration>", errors.MalformedXML),                              # two without And
    ("<Status>Enabled</Status><Filter/><Expiration><Days>-1</Days></Expiration>", errors.InvalidArgument),
    ("<Status>Enabled</Status><Filter/><NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
     "<NewerNoncurrentVersions>101</NewerNoncurrentVersions></NoncurrentVersionExpiration>", errors.InvalidArgument),
    ("<Status>Enabled</Status><Filter/><Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>",
     errors.NotImplemented_),
    ("<Status>Enabled</Status><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>"
     "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>", errors.InvalidRequest),
])
def test_parse_errors(body, error):
    with pytest.raises(error):
        parse_lifecycle(doc(body))


def test_plan_current_and_noncurrent():
    rule = Rule("r", True, Filter("logs/"), expiration_days=1, noncurrent_days=1, newer_noncurrent_versions=1)
    versions = [rec("logs/a", "v3", T0 + 2 * DAY, latest=True), rec("logs/a", "v2", T0 + DAY),
                rec("logs/a", "v1", T0)]
    # v3 is 0 days old; v2 (newest noncurrent) is protected by NewerNoncurrentVersions=1;
    # v1 became noncurrent at T0+DAY and is due at midnight after T0+2*DAY.
    now = due(T0 + DAY, 1)
    assert [(a.kind, a.record.version_id) for a in plan_key(versions, [rule], now - 1)] == []
    assert [(a.kind, a.record.version_id) for a in plan_key(versions, [rule], now)] == [("delete-version", "v1")]
    later = due(T0 + 2 * DAY, 1)
    assert [(a.kind, a.record.version_id) for a in plan_key(versions, [rule], later)] == [
        ("expire-current", "v3"), ("delete-version", "v1")]


def test_plan_tags_disabled_and_markers():
    tagged = Rule("t", True, Filter(tags=(("temp", "yes"),)), expiration_days=1)
    off = Rule("o", False, Filter(), expiration_days=1)
    markers = Rule("m", True, Filter("gone/"), expired_object_delete_marker=True)
    far = T0 + 10 * DAY
    assert plan_key([rec("x", "v", T0, tags={"temp": "yes"}, latest=True)], [tagged], far)[0].kind == "expire-current"
    assert plan_key([rec("x", "v", T0, tags={"temp": "no"}, latest=True)], [tagged], far) == []
    assert plan_key([rec("x", "v", T0, latest=True)], [off], far) == []
    lone = [rec("gone/a", "m", T0, marker=True, latest=True)]
    assert [a.kind for a in plan_key(lone, [markers], far)] == ["delete-version"]
    not_lone = lone + [rec("gone/a", "v", T0 - 1)]
    assert plan_key(not_lone, [markers], far) == []


def test_upload_due():
    rule = Rule("u", True, Filter("tmp/"), abort_days=2)
    assert not upload_due("tmp/x", T0, [rule], due(T0, 2) - 1)
    assert upload_due("tmp/x", T0, [rule], due(T0, 2))
    assert not upload_due("other", T0, [rule], T0 + 100 * DAY)
