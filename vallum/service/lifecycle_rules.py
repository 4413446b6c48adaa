"""Lifecycle configuration: parse and validate the XML, match rules, decide what is due.

Pure functions only (no I/O), shared by the PutBucketLifecycleConfiguration
handler (validation) and the background worker (vallum.service.lifecycle), and
unit-tested on their own. Times are epoch seconds; like S3, an action is due at
the first midnight UTC on or after (start + days).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from vallum.meta.records import ObjectRecord
from vallum.s3 import errors, xml

DAY = 86400
MAX_RULES = 1000


@dataclass(frozen=True)
class Filter:
    prefix: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    size_gt: int | None = None
    size_lt: int | None = None

    def matches(self, key: str, tags: dict[str, str] | None = None, size: int | None = None) -> bool:
        if not key.startswith(self.prefix):
            return False
        found = tags or {}
        if any(found.get(k) != v for k, v in self.tags):
            return False
        if size is not None:
            if self.size_gt is not None and not size > self.size_gt:
                return False
            if self.size_lt is not None and not size < self.size_lt:
                return False
        return True


@dataclass(frozen=True)
class Rule:
    id: str
    enabled: bool
    filter: Filter = field(default_factory=Filter)
    expiration_days: int | None = None
    expiration_date: float | None = None
    expired_object_delete_marker: bool = False
    noncurrent_days: int | None = None
    newer_noncurrent_versions: int | None = None
    abort_days: int | None = None

    def matches(self, record: ObjectRecord) -> bool:
        return self.enabled and self.filter.matches(
            record.key, record.extra.get("tags"), None if record.delete_marker else record.size)


def due(start: float, days: int) -> float:
    """When an action of ``days`` days counted from ``start`` takes effect (midnight UTC)."""
    return math.ceil((start + days * DAY) / DAY) * DAY


# -- decisions -------------------------------------------------------------------
@dataclass(frozen=True)
class Action:
    kind: str                 # "expire-current" | "delete-version"
    record: ObjectRecord


def plan_key(versions: list[ObjectRecord], rules: Iterable[Rule], now: float) -> list[Action]:
    """What is due for one key, given all its versions newest first."""
    rules = [r for r in rules if r.enabled]
    if not versions:
        return []
    actions: list[Action] = []
    current = versions[0]
    if not current.delete_marker:
        for rule in rules:
            if not rule.matches(current):
                continue
            if (rule.expiration_days is not None and due(current.last_modified, rule.expiration_days) <= now) \
                    or (rule.expiration_date is not None and rule.expiration_date <= now):
                actions.append(Action("expire-current", current))
                break
    elif len(versions) == 1 and any(r.expired_object_delete_marker and r.filter.matches(current.key)
                                    for r in rules):
        actions.append(Action("delete-version", current))
    for index in range(1, len(versions)):
        record, superseded_at = versions[index], versions[index - 1].last_modified
        newer = index - 1                        # noncurrent versions newer than this one
        for rule in rules:
            if rule.noncurrent_days is None or not rule.matches(record):
                continue
            if rule.newer_noncurrent_versions is not None and newer < rule.newer_noncurrent_versions:
                continue
            if due(superseded_at, rule.noncurrent_days) <= now:
                actions.append(Action("delete-version", record))
                break
    return actions


def upload_due(key: str, initiated: float, rules: Iterable[Rule], now: float) -> bool:
    """Whether an incomplete multipart upload is to be aborted."""
    return any(r.enabled and r.abort_days is not None and r.filter.matches(key)
               and due(initiated, r.abort_days) <= now for r in rules)


# -- parsing ---------------------------------------------------------------------
def _int(elem, tag: str, message: str, *, lo: int = 1, hi: int = 2**31 - 1) -> int | None:
    text = xml.text(elem, tag)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise errors.MalformedXML() from None
    if not lo <= value <= hi:
        raise errors.InvalidArgument(message, ArgumentName=tag, ArgumentValue=text)
    return value


def _tag(elem) -> tuple[str, str]:
    xml.only_known(elem, {"Key", "Value"})
    key, value = xml.text(elem, "Key"), xml.text(elem, "Value")
    if key is None or value is None:
        raise errors.MalformedXML()
    return key, value


def _filter(rule_elem) -> Filter:
    legacy = xml.text(rule_elem, "Prefix")
    elem = xml.child(rule_elem, "Filter")
    if elem is None:
        if legacy is None:
            raise errors.MalformedXML()
        return Filter(prefix=legacy)
    if legacy is not None:
        raise errors.MalformedXML()
    xml.only_known(elem, {"Prefix", "Tag", "And", "ObjectSizeGreaterThan", "ObjectSizeLessThan"})
    if len(list(elem)) > 1:
        raise errors.MalformedXML()
    size_msg = "'ObjectSize' must be a non-negative integer"
    if (tag := xml.child(elem, "Tag")) is not None:
        return Filter(tags=(_tag(tag),))
    if (both := xml.child(elem, "And")) is not None:
        xml.only_known(both, {"Prefix", "Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan"})
        tags = tuple(_tag(t) for t in xml.children(both, "Tag"))
        if len({k for k, _ in tags}) != len(tags):
            raise errors.InvalidRequest("Duplicate Tag Keys are not allowed.")
        result = Filter(prefix=xml.text(both, "Prefix", "") or "", tags=tags,
                        size_gt=_int(both, "ObjectSizeGreaterThan", size_msg, lo=0),
                        size_lt=_int(both, "ObjectSizeLessThan", size_msg, lo=1))
        if result.size_gt is not None and result.size_lt is not None and result.size_gt >= result.size_lt:
            raise errors.InvalidArgument("ObjectSizeGreaterThan must be less than ObjectSizeLessThan",
                                         ArgumentName="ObjectSizeGreaterThan")
        return result
    return Filter(prefix=xml.text(elem, "Prefix", "") or "",
                  size_gt=_int(elem, "ObjectSizeGreaterThan", size_msg, lo=0),
                  size_lt=_int(elem, "ObjectSizeLessThan", size_msg, lo=1))


def _date(text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise errors.MalformedXML() from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    stamp = parsed.timestamp()
    if stamp % DAY:
        raise errors.InvalidArgument("'Date' must be at midnight GMT", ArgumentName="Date", ArgumentValue=text)
    return stamp


def _rule(elem) -> Rule:
    xml.only_known(elem, {"ID", "Status", "Filter", "Prefix", "Expiration", "NoncurrentVersionExpiration",
                          "AbortIncompleteMultipartUpload", "Transition", "NoncurrentVersionTransition"})
    if xml.child(elem, "Transition") is not None or xml.child(elem, "NoncurrentVersionTransition") is not None:
        raise errors.NotImplemented_("Lifecycle transitions between storage classes are not implemented by Vallum.")
    rule_id = xml.text(elem, "ID") or ""
    if len(rule_id) > 255:
        raise errors.InvalidArgument("ID length should not exceed allowed limit of 255", ArgumentName="ID")
    status = xml.text(elem, "Status")
    if status not in ("Enabled", "Disabled"):
        raise errors.MalformedXML()
    flt = _filter(elem)
    fields: dict = {}
    if (exp := xml.child(elem, "Expiration")) is not None:
        xml.only_known(exp, {"Days", "Date", "ExpiredObjectDeleteMarker"})
        if len(list(exp)) != 1:
            raise errors.MalformedXML()
        fields["expiration_days"] = _int(exp, "Days", "'Days' for Expiration action must be a positive integer")
        date = xml.text(exp, "Date")
        if date is not None:
            fields["expiration_date"] = _date(date)
        marker = xml.text(exp, "ExpiredObjectDeleteMarker")
        if marker is not None:
            if marker not in ("true", "false"):
                raise errors.MalformedXML()
            if marker == "true" and flt.tags:
                raise errors.InvalidRequest("ExpiredObjectDeleteMarker cannot be specified with tags.")
            fields["expired_object_delete_marker"] = marker == "true"
    if (nve := xml.child(elem, "NoncurrentVersionExpiration")) is not None:
        xml.only_known(nve, {"NoncurrentDays", "NewerNoncurrentVersions"})
        days = _int(nve, "NoncurrentDays", "'NoncurrentDays' for NoncurrentVersionExpiration action must be "
                    "a positive integer")
        if days is None:
            raise errors.MalformedXML()
        fields["noncurrent_days"] = days
        fields["newer_noncurrent_versions"] = _int(
            nve, "NewerNoncurrentVersions", "'NewerNoncurrentVersions' must be an integer between 1 and 100",
            hi=100)
    if (abort := xml.child(elem, "AbortIncompleteMultipartUpload")) is not None:
        xml.only_known(abort, {"DaysAfterInitiation"})
        days = _int(abort, "DaysAfterInitiation", "'DaysAfterInitiation' for AbortIncompleteMultipartUpload "
                    "action must be a positive integer")
        if days is None:
            raise errors.MalformedXML()
        if flt.tags:
            raise errors.InvalidRequest("Tag-based filter cannot be used with AbortIncompleteMultipartUpload action")
        fields["abort_days"] = days
    if not any(v not in (None, False) for v in fields.values()) and "expired_object_delete_marker" not in fields:
        raise errors.InvalidRequest("At least one action needs to be specified in a rule")
    return Rule(id=rule_id, enabled=status == "Enabled", filter=flt, **fields)


def parse_lifecycle(data: bytes) -> list[Rule]:
    """Validate a LifecycleConfiguration document (S3 error codes on bad input)."""
    doc = xml.parse(data, "LifecycleConfiguration")
    xml.only_known(doc, {"Rule"})
    rules = [_rule(r) for r in xml.children(doc, "Rule")]
    if not rules or len(rules) > MAX_RULES:
        raise errors.MalformedXML()
    ids = [r.id for r in rules if r.id]
    if len(ids) != len(set(ids)):
        raise errors.InvalidArgument("Rule ID must be unique. Found same ID for more than one rule",
                                     ArgumentName="ID")
    return rules
