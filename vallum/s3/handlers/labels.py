"""Mandatory access control at the S3 handlers: who the caller is to MAC, and the checks.

Handlers ask here once they hold the record (the label lives in it); the decision itself
is ``authz.decide_labels``. Why handlers and not the gate: the object's label is only
known after the metadata read the handler does anyway, so MAC costs no extra read.
A read the caller may not make answers exactly like a missing key (NoSuchKey /
NoSuchVersion, same headers), so neither codes nor headers reveal what exists above
the caller's level; listings skip such objects (visibility.py).

Labels are parsed once per distinct text (LRU caches), subjects once per request, so a
check is a dominance comparison of precomputed labels.

Stock clients (awscli, rclone, s3fs) cannot send or show ``x-vallum-*`` headers, so the
label also travels as user metadata (``x-amz-meta-vallum-label``) and as the reserved tag
``vallum:label``: one label, stored once (``extra["label"]``), under the same checks
whichever way it is asked for. A refusal the caller may know the reason for (its own
write) names the MAC rule in the S3 error message; a read refusal stays a missing key.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from typing import Any

from vallum import authz
from vallum.http import Headers, Request
from vallum.meta.records import BucketRecord, ObjectRecord
from vallum.s3 import errors
from vallum.s3.tags import tags_from_header
from vallum.security.mac.labels import Label, LabelError, lowest, lub, parse
from vallum.security.mac.rules import LabelRange, Subject, subject_for
from vallum.security.spill import guard as spill
from vallum.security.spill.guard import SpillGuard

LABEL_HEADER = "x-vallum-classification"
SESSION_HEADER = "x-vallum-session-level"
FLOOR_HEADER = "x-vallum-label-floor"
CEILING_HEADER = "x-vallum-label-ceiling"
META_KEY = "vallum-label"                      # user metadata: x-amz-meta-vallum-label
META_HEADER = "x-amz-meta-" + META_KEY
TAG_KEY = "vallum:label"                       # the reserved object tag
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
        raise errors.AccessDenied(refusal_message(f"mac: {exc}")) from None
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
def requested(headers: Headers) -> str | None:
    """The label a write asks for, however a client sends it: ``x-vallum-classification``,
    ``x-amz-meta-vallum-label`` or the tag ``vallum:label`` in ``x-amz-tagging``. Several
    must name the same label (InvalidArgument otherwise); None: none sent."""
    sent = [(name, text) for name, text in ((LABEL_HEADER, headers.get(LABEL_HEADER)),
                                            (META_HEADER, headers.get(META_HEADER)),
                                            (TAG_KEY, _tag_label(headers))) if text]
    if not sent:
        return None
    found = {parsed_label(text, name) for name, text in sent}
    if len(found) > 1:
        names = ", ".join(name for name, _ in sent)
        raise errors.InvalidArgument(f"Conflicting labels in {names}: send one label",
                                     ArgumentName=sent[1][0])
    return sent[0][1]


def _tag_label(headers: Headers) -> str | None:
    tags = tags_from_header(headers.get("x-amz-tagging"))
    return tags.get(TAG_KEY) if tags else None


def parsed_label(text: str, name: str = LABEL_HEADER) -> Label:
    """``text`` as a label; InvalidArgument naming where it came from if malformed."""
    try:
        return label_of(text)
    except LabelError as exc:
        raise errors.InvalidArgument(f"Invalid {name} label: {exc}", ArgumentName=name) from None


def label_headers(extra: dict[str, Any]) -> dict[str, str]:
    """Response headers showing a version's label: ours, and user metadata any client
    shows when the label is above the lowest level (absent there, as the reserved tag is:
    an unclassified object looks like any S3 object to tools comparing metadata)."""
    text = extra.get("label")
    if not text:
        return {}
    if record_label(extra) == LOWEST:
        return {LABEL_HEADER: text}
    return {LABEL_HEADER: text, META_HEADER: text}


def denied(request: Request, decision: authz.Decision) -> errors.S3Error:
    """AccessDenied for a refused write, naming the MAC rule: the caller knows its own
    session level, the label it asked for and the bucket's range (HeadBucket shows it)."""
    refused(request, decision.reason)
    return errors.AccessDenied(refusal_message(decision.reason))


def refusal_message(reason: str) -> str:
    """The S3 error Message for a MAC rule (``mac: no write down: ...``)."""
    return "Access Denied by mandatory access control: " + reason.removeprefix("mac: ")


def default_label(who: Subject, rng: LabelRange | None, text: str | None = None) -> Label:
    """The label a write gets: ``text`` if given, else the session level raised to the
    bucket floor (the policy simulator asks here too, so both agree)."""
    if text:
        return parsed_label(text)
    return lub([who.write, rng.floor]) if rng is not None else who.write


def write_label(request: Request, bucket: BucketRecord, header: str | None,
                sources: Sequence[Label] = (), *,
                session_default: bool = True) -> tuple[Label, LabelRange | None]:
    """The label a write gives, checked: no write down, inside the bucket range.

    The label asked for (``header``), else the caller's session level raised to the bucket
    floor (``session_default``; else the floor alone), joined with the labels of any
    sources (copy and multipart keep the least upper bound). InvalidArgument if malformed;
    AccessDenied naming the rule otherwise."""
    rng = bucket_range(bucket)
    who = subject(request)
    if header:
        label = parsed_label(header)
    else:
        label = default_label(who, rng) if session_default else (rng.floor if rng else LOWEST)
    if sources:
        label = lub([label, *sources])
    decision = authz.decide_labels(authz.LabelCheck(who, write=label, bucket_range=rng))
    request.audit_label = label.banner()
    if not decision.allowed:
        if not header and session_default and decision.statement == "bucket-range":
            decision = authz.Decision(False, decision.reason + " (no label was sent: the "
                                      "default is the session level, raised to the floor)",
                                      decision.policy, decision.statement)
        raise denied(request, decision)
    return label, rng


def put_guard(request: Request, bucket: BucketRecord, header: str | None,
              sources: Sequence[Label] = ()) -> SpillGuard:
    """Checked label of a write plus the spill guard that scans its body."""
    label, rng = write_label(request, bucket, header, sources)
    return SpillGuard(label, rng, f"{request.request_id} {bucket.name}/{request.endpoint.key}",
                      spill.mode_of(bucket.config))


# ---------------------------------------------------------------- the reserved tag
def without_label_tag(tags: dict[str, str] | None) -> dict[str, str] | None:
    """A tag set with the reserved ``vallum:label`` left out (it is the label, not a tag)."""
    if not tags or TAG_KEY not in tags:
        return tags
    return {k: v for k, v in tags.items() if k != TAG_KEY}


def tags_with_label(extra: dict[str, Any]) -> dict[str, str]:
    """A version's tags as GetObjectTagging shows them: with ``vallum:label`` when the
    label is above the lowest level (absent: the lowest; the metadata always shows it)."""
    tags = dict(extra.get("tags") or {})
    if record_label(extra) != LOWEST:
        tags[TAG_KEY] = extra["label"]
    return tags


def relabel(request: Request, bucket: BucketRecord, record: ObjectRecord,
            text: str | None) -> Label | None:
    """The new label PutObjectTagging asks for with ``vallum:label``, checked; None when it
    asks for none or for the label the version has.

    Relabelling writes the version at the new label, so it passes the write rules (no
    write down, bucket range) and two of its own: a label is only raised here (lowering
    is a downgrade: admin DowngradeLabel, audited), and never above the session level
    (the caller must still see what it labels). AccessDenied naming the rule otherwise:
    the caller can read the version, so it knows its label."""
    if not text:
        return None
    new = parsed_label(text, TAG_KEY)
    old = record_label(record.extra)
    request.audit_label = new.banner()
    if new == old:
        return None
    who = subject(request)
    if not new.dominates(old):
        rule = (f"mac: relabel: {new} does not dominate the current label {old}; lowering a "
                "label is a downgrade (vallum admin label downgrade)")
        raise denied(request, authz.Decision(False, rule, "mac", "relabel-down"))
    if not who.can_read(new):
        rule = f"mac: relabel: label {new} above session level {who.describe()}"
        raise denied(request, authz.Decision(False, rule, "mac", "relabel-above-session"))
    decision = authz.decide_labels(authz.LabelCheck(who, write=new,
                                                    bucket_range=bucket_range(bucket)))
    if not decision.allowed:
        raise denied(request, decision)
    return new


async def audit_relabel(request: Request, record: ObjectRecord, new: Label) -> None:
    """A security record of an allowed relabel, durable before the change commits (as
    DowngradeLabel's): who raised which version from what to what."""
    log = request.services.audit
    if log is None:
        return
    caller = request.services.caller
    await log.append({
        "type": "security", "event": "label-raise", "operation": "PutObjectTagging",
        "principal": request.principal, "account": caller.account if caller else None,
        "source_ip": request.source_ip,
        "bucket": record.bucket, "key": record.key, "version": record.version_id,
        "from_label": record_label(record.extra).banner(), "label": new.banner(),
        "decision": "allow", "rule": "mac: relabel: raised within the session level"})
