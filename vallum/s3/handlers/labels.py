"""Mandatory access control at the S3 handlers: who the caller is to MAC, and the checks.

Handlers ask here once they hold the record (the label lives in it); the decision itself
is ``authz.decide_labels``. Why handlers and not the gate: the object's label is only
known after the metadata read the handler does anyway, so MAC costs no extra read.
A read the caller may not make answers exactly like a missing key (NoSuchKey /
NoSuchVersion, same headers), so neither codes nor headers reveal what exists above
the caller's level; listings skip such objects (visibility.py).

Labels are parsed once per distinct text (LRU caches), subjects once per request, so a
check is a dominance comparison of precomputed labels.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from typing import Any

from vallum import authz
from vallum.http import Request
from vallum.meta.records import BucketRecord, ObjectRecord
from vallum.s3 import errors
from vallum.security import spill
from vallum.security.labels import Label, LabelError, lowest, lub, parse
from vallum.security.mac import LabelRange, Subject, subject_for
from vallum.security.spill import SpillGuard

LABEL_HEADER = "x-vallum-classification"
SESSION_HEADER = "x-vallum-session-level"
FLOOR_HEADER = "x-vallum-label-floor"
CEILING_HEADER = "x-vallum-label-ceiling"
ROOT_CLEARANCE_ENV = "VALLUM_ROOT_CLEARANCE"
LOWEST = lowest()


@functools.lru_cache(maxsize=8192)
def label_of(text: str) -> Label:
    """A label from its (stored or sent) text; LabelError if malformed."""
    return parse(text)


def record_label(extra: dict[str, Any]) -> Label:
    """The label of a stored version or upload (unlabelled legacy data: the lowest)."""
    text = extra.get("label")
    return label_of(text) if text else LOWEST


@functools.lru_cache(maxsize=1024)
def _range(raw: str) -> LabelRange:
    doc = json.loads(raw)
    return LabelRange(label_of(doc["floor"]), label_of(doc["ceiling"]))


def bucket_range(bucket: BucketRecord) -> LabelRange | None:
    raw = bucket.config.get("label-range")
    return _range(raw) if raw else None


@functools.cache
def root_clearance() -> Label | None:
    """The platform root's clearance: VALLUM_ROOT_CLEARANCE, else system high (None)."""
    text = os.environ.get(ROOT_CLEARANCE_ENV, "").strip()
    return parse(text) if text else None


@functools.lru_cache(maxsize=2048)
def cached_subject(clearance: str | None, requested: str | None, is_root: bool) -> Subject:
    if is_root:
        level = root_clearance() if clearance is None else label_of(clearance)
    else:
        level = label_of(clearance) if clearance else LOWEST
    return subject_for(level, label_of(requested) if requested else None, trusted=is_root,
                       floor=LOWEST)


def subject(request: Request) -> Subject:
    """The caller's Subject (clearance, session level), computed once per request.

    Session level: header ``x-vallum-session-level``, else the role's setting, else the
    clearance. Malformed: InvalidArgument; above the clearance: AccessDenied."""
    cached = request.__dict__.get("_mac_subject")
    if cached is not None:
        return cached
    services = request.services
    caller = services.caller
    if caller is not None:
        clearance, is_root, role_level = caller.clearance, caller.is_root, caller.session_level
    else:
        is_root = request.principal is not None and request.principal == services.root.access_key
        clearance, role_level = None, None
    requested = request.headers.get(SESSION_HEADER) or role_level
    try:
        if (caller is not None and caller.level_fixed and requested != role_level
                and label_of(requested) != label_of(role_level)):
            # Scoped credentials (compute tasks) run at one level: no reading up, no writing down.
            raise PermissionError(f"the session level of these credentials is fixed at {role_level}")
        result = cached_subject(clearance, requested, is_root)
    except LabelError as exc:
        raise errors.InvalidArgument(f"Invalid {SESSION_HEADER} label: {exc}",
                                     ArgumentName=SESSION_HEADER) from None
    except PermissionError as exc:
        refused(request, f"mac: {exc}")
        raise errors.AccessDenied() from None
    request.__dict__["_mac_subject"] = result
    return result


def refused(request: Request, rule: str) -> None:
    """Audit a MAC refusal as a deny with its rule, whatever the answer looks like (a
    missing key, SlowDown, an unchanged 204): the client must not learn why, the log must."""
    request.decision_reason = rule
    request.decision = "deny"


def _note(request: Request, decision: authz.Decision, label: Label | None) -> None:
    """Audit what MAC saw: the label always, the rule when MAC denied (an allowed
    request keeps the IAM rule that let it in)."""
    if not decision.allowed:
        refused(request, decision.reason)
    if label is not None:
        request.audit_label = label.banner()


# ---------------------------------------------------------------- reads
def require_read(request: Request, record: ObjectRecord, missing: Exception) -> None:
    """No read up: raise ``missing`` (the error a missing key would give) when the
    caller's session level does not dominate the record's label."""
    who = subject(request)
    label = record_label(record.extra)   # delete markers carry a label too (marker_label)
    if who.read is None:
        request.audit_label = label.banner()
        return
    decision = authz.decide_labels(authz.LabelCheck(who, read=label))
    _note(request, decision, label)
    if not decision.allowed:
        raise missing


def readable(who: Subject, record: Any) -> bool:
    """May ``who`` see this version, delete marker or upload? (unlabelled: the lowest)"""
    if who.read is None:
        return True
    return who.can_read(record_label(record.extra))


def hide_marker(request: Request, record: ObjectRecord, missing: errors.S3Error) -> None:
    """A delete marker above the caller's level answers as a missing key would: before the
    marker's own answer (whose headers would name the hidden marker's version id)."""
    if record.delete_marker and not readable(subject(request), record):
        refused(request, "mac: no read up: delete marker above the session level")
        raise missing


def marker_label(request: Request, bucket: BucketRecord, current: ObjectRecord | None) -> Label:
    """The label of a delete marker this caller adds over ``current`` (the key's newest
    version the caller may see, visibility.latest_version).

    It is seen by exactly those who saw what it deletes: the label of the version (or
    marker) it shadows when the caller can read it; otherwise (none, or one
    hidden from the caller, which is then treated as absent) the caller's write level,
    raised to the bucket floor. So a marker over a hidden object, made by someone who
    may see that object, stays hidden from lower readers; and a lower caller's marker
    over a hidden key is the same as over a missing key (a new, lower version)."""
    who = subject(request)
    if current is not None and readable(who, current):   # a marker over a marker: its label
        return record_label(current.extra)
    rng = bucket_range(bucket)
    return lub([who.write, rng.floor]) if rng is not None else who.write


def missing_error(key: str, version_id: str | None) -> errors.S3Error:
    if version_id is not None:
        return errors.NoSuchVersion(Key=key, VersionId=version_id)
    return errors.NoSuchKey(Key=key)


# ---------------------------------------------------------------- writes
def write_label(request: Request, bucket: BucketRecord, header: str | None,
                sources: Sequence[Label] = ()) -> tuple[Label, LabelRange | None]:
    """The label a write gives (the header, else the bucket floor, joined with the labels
    of any sources: copy and multipart keep the least upper bound), checked: no write
    down, inside the bucket range. InvalidArgument / AccessDenied otherwise."""
    rng = bucket_range(bucket)
    try:
        label = label_of(header) if header else (rng.floor if rng else LOWEST)
    except LabelError as exc:
        raise errors.InvalidArgument(f"Invalid {LABEL_HEADER} label: {exc}",
                                     ArgumentName=LABEL_HEADER) from None
    if sources:
        label = lub([label, *sources])
    decision = authz.decide_labels(authz.LabelCheck(subject(request), write=label,
                                                    bucket_range=rng))
    _note(request, decision, label)
    if not decision.allowed:
        raise errors.AccessDenied()
    return label, rng


def put_guard(request: Request, bucket: BucketRecord, header: str | None,
              sources: Sequence[Label] = ()) -> SpillGuard:
    """Checked label of a write plus the spill guard that scans its body."""
    label, rng = write_label(request, bucket, header, sources)
    return SpillGuard(label, rng, f"{request.request_id} {bucket.name}/{request.endpoint.key}",
                      spill.mode_of(bucket.config))
